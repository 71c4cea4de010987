"""training: a real tiny run on drawn faces, resume, stop by signal, refusals, and the notebook."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import papermill
import pytest
import tensorflow as tf
from PIL import Image

from facegan.images import image_grid
from facegan import drawing
from facegan.config import Config, DIFF_AUGMENTATIONS
from facegan.gan import DCGAN
from facegan import devices
from facegan import runs
from facegan import callbacks, training
from conftest import ROOT, TINY, tiny_config


def assert_grid_of_64px_faces(path):
    with Image.open(path) as grid:
        picture = np.asarray(grid)
    assert picture.shape == (640, 640, 3)
    tiles = picture.reshape(10, 64, 10, 64, 3).swapaxes(1, 2).reshape(100, -1)
    assert len({tile.tobytes() for tile in tiles}) == 100  # 100 different faces, one per fixed vector


@pytest.mark.slow
def test_train_writes_checkpoints_config_losses_and_grids_then_resumes(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir)
    first = training.train(config, show=False)
    assert (first.start_step, first.step, first.stopped) == (0, 3, False)
    saved = Config.from_dict(json.loads((tmp_path / "my_net" / "config.json").read_text()))
    assert saved == config  # every setting, so a later reader rebuilds the same networks
    assert sorted(f for f in os.listdir(tmp_path / "my_net") if f.endswith(".index")) == ["ckpt-2.index",
                                                                                            "ckpt-3.index"]
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png"]
    assert_grid_of_64px_faces(tmp_path / "imgs" / "examples-1.png")
    first_grid = (tmp_path / "imgs" / "examples-1.png").read_bytes()
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    grid_latents = gan.grid_latents.numpy()

    second = training.train(config, show=False, steps=6)
    assert (second.start_step, second.step) == (3, 6)
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "imgs" / "examples-1.png").read_bytes() == first_grid  # not rewritten from scratch
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png", "examples-5.png",
                                                     "examples-6.png"]
    resumed, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert int(resumed.step.numpy()) == 6
    np.testing.assert_array_equal(resumed.grid_latents.numpy(), grid_latents)  # grids line up across the stop
    assert int(resumed.generator_optimizer.iterations.numpy()) == 6  # optimizer state came back too

    again = training.train(config, show=False, steps=6)  # nothing left to do
    assert (again.start_step, again.step) == (6, 6)


@pytest.mark.slow
def test_resuming_an_older_checkpoint_drops_the_loss_rows_it_does_not_hold(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=3, checkpoint_every=10)
    training.train(config, show=False)
    with open(os.path.join(config.outputs.checkpoint_dir, runs.LOSS_FILE), "a") as handle:
        handle.write("4,0.5,0.5,10,1\n5,0.5")  # rows of steps lost in a crash, the last one half-written
    training.train(config, show=False, steps=4)
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [1, 2, 3, 4]


@pytest.mark.slow
def test_a_checkpoint_of_other_networks_is_refused_and_left_untouched(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2)
    training.train(config, show=False)
    before = {name: (tmp_path / "my_net" / name).read_bytes() for name in os.listdir(tmp_path / "my_net")
              if os.path.isfile(tmp_path / "my_net" / name)}
    with pytest.raises(ValueError, match=r"other networks: generator_width 4 \(saved\) vs 8 \(requested\)\. "
                       r"It is left untouched\. To resume it, pass generator_width=4 "):
        training.train(config, show=False, steps=4, generator_width=8)
    after = {name: (tmp_path / "my_net" / name).read_bytes() for name in before}
    assert after == before

    fresh = training.train(config, show=False, steps=2, generator_width=8, fresh=True)
    assert (fresh.start_step, fresh.step) == (0, 2)
    archived = tmp_path / "my_net" / "archive"
    (old_run,) = os.listdir(archived)
    assert json.loads((archived / old_run / "config.json").read_text())["networks"]["generator_width"] == 4
    assert (tmp_path / "imgs" / "archive").is_dir()


@pytest.mark.slow
def test_resuming_with_another_recipe_trains_on_with_it_and_says_what_changed(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=1, diff_augment=[], label_smoothing=0.0)
    training.train(config, show=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same recipe resumes silently
        training.train(config, show=False, steps=2)
    with pytest.warns(UserWarning, match=r"another training recipe than it began with: label_smoothing 0.0 → 0.1; "
                                         r"diff_augment \[\] → \['color', 'translation', 'cutout'\]\."):
        run = training.train(config, show=False, steps=3, diff_augment=DIFF_AUGMENTATIONS, label_smoothing=0.1)
    assert run.step == 3 and runs.read_config(str(tmp_path / "my_net")).recipe.label_smoothing == 0.1


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_of_the_step_reached(tmp_path, made_faces, cache_dir):
    script = ("from facegan import training; "
              f"training.train(image_path={str(made_faces / 'img_align_celeba')!r}, cache_dir={cache_dir!r}, "
              f"steps=100000, checkpoint_every=100000, sample_every=100000, generator_width=4, "
              f"discriminator_width=4, z_dim=16, batch_size=8, show=False)")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stderr=subprocess.PIPE)
    losses = tmp_path / "my_net" / runs.LOSS_FILE
    deadline = time.time() + 120
    while time.time() < deadline and len(runs.read_losses(str(tmp_path / "my_net"))) < 5:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    logged = runs.read_losses(str(tmp_path / "my_net"))[-1]["step"]
    gan, _ = runs.load_gan(str(tmp_path / "my_net"))
    assert int(gan.step.numpy()) == logged >= 5
    assert losses.is_file() and (tmp_path / "imgs" / f"examples-{logged}.png").is_file()


@pytest.mark.slow
def test_the_notebook_trains_headless_and_resumes(tmp_path, made_faces, cache_dir):
    parameters = dict(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=2, sample_every=100,
                      checkpoint_every=100, checkpoint_dir=str(tmp_path / "my_net"),
                      sample_dir=str(tmp_path / "imgs"), evaluation_samples=16, **TINY)
    papermill.execute_notebook(str(ROOT / "gan_new.ipynb"), str(tmp_path / "out1.ipynb"), parameters=parameters,
                               cwd=str(ROOT), progress_bar=False)
    assert_grid_of_64px_faces(tmp_path / "imgs" / "examples-1.png")
    assert (tmp_path / "my_net" / "config.json").is_file()
    assert [row["step"] for row in runs.read_losses(str(tmp_path / "my_net"))] == [1, 2]
    first_grid = (tmp_path / "imgs" / "examples-1.png").read_bytes()

    papermill.execute_notebook(str(ROOT / "gan_new.ipynb"), str(tmp_path / "out2.ipynb"),
                               parameters=dict(parameters, steps=4), cwd=str(ROOT), progress_bar=False)
    output = json.dumps(json.loads((tmp_path / "out2.ipynb").read_text())["cells"])
    assert "resuming from" in output and "at step 2" in output
    assert [row["step"] for row in runs.read_losses(str(tmp_path / "my_net"))] == [1, 2, 3, 4]
    assert (tmp_path / "imgs" / "examples-1.png").read_bytes() == first_grid
    assert "image/png" in output  # the real-faces grid, the sample grid and the loss plot were shown
    assert "(16 generated vs 16 real faces)" in output and "swd64" in output  # the final evaluation cell


@pytest.mark.slow
def test_the_notebooks_settings_and_config_cells_run_again_after_the_last_cell(tmp_path, made_faces, cache_dir):
    # as people use Jupyter: run everything, then run the config cell again, or the parameters and config cells;
    # no name a later cell brings in (an import) may replace a setting
    import copy

    import nbclient
    import nbformat

    notebook = nbformat.read(str(ROOT / "gan_new.ipynb"), as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parameters = next(cell for cell in code if "parameters" in cell.metadata.get("tags", []))
    config_cell = next(cell for cell in code if "Config.from_dict(globals())" in cell.source)
    train_cell = next(cell for cell in code if "training.train(" in cell.source)
    last = code[-1]
    values = dict(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=2, sample_every=100,
                  checkpoint_every=100, checkpoint_dir=str(tmp_path / "my_net"), sample_dir=str(tmp_path / "imgs"),
                  evaluation_samples=16, **TINY)
    chosen = nbformat.v4.new_code_cell("\n".join(f"{name} = {value!r}" for name, value in values.items()))
    check = nbformat.v4.new_code_cell("print(type(config.quality.metrics).__name__, config.quality.metrics, "
                                      "config.training.steps)")
    order = [parameters, chosen, config_cell, train_cell, last, config_cell, check, parameters, chosen, config_cell,
             check]
    session = nbformat.v4.new_notebook(cells=[copy.deepcopy(cell) for cell in order], metadata=notebook.metadata)
    # one kernel runs the cells in that order; an error in any raises CellExecutionError with its traceback
    nbclient.NotebookClient(session, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    assert "swd64" in json.dumps(session.cells[4].outputs)  # the last cell did score the run
    assert session.cells[6].outputs[0]["text"].strip() == session.cells[-1].outputs[0]["text"].strip() == \
        "list ['swd'] 2"


# ----------------------------------------------------------------------------- faults

def start_training(tmp_path, made_faces, cache_dir, log, **settings):
    """Headless training of tiny networks in a subprocess, as a user's `papermill` or script run would be."""
    values = dict(image_path=str(made_faces / "img_align_celeba"), cache_dir=cache_dir, steps=10 ** 6,
                  checkpoint_every=10 ** 6, sample_every=10 ** 6, **TINY)
    values.update(settings)
    script = f"from facegan import training; training.train(**{values!r})"
    return subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def wait_until_logged_past(process, checkpoint_dir, step, timeout=120):
    """Wait until the log holds a step past `step` (so the process has really trained since it started)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = runs.read_losses(checkpoint_dir)
        if rows and rows[-1]["step"] > step:
            return
        assert process.poll() is None, "training ended before its steps"
        time.sleep(0.05)
    raise AssertionError("training did not reach its steps in time")


@pytest.mark.slow
def test_a_second_run_on_the_same_folder_is_refused_until_the_first_dies(tmp_path, made_faces, cache_dir):
    with open(tmp_path / "log.txt", "w") as log:
        process = start_training(tmp_path, made_faces, cache_dir, log)
        wait_until_logged_past(process, str(tmp_path / "my_net"), 0)
        config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, checkpoint_dir=str(tmp_path / "my_net"))
        with pytest.raises(RuntimeError, match=rf"my_net is in use by another training run \(pid {process.pid} on "):
            training.train(config, show=False)
        process.kill()  # SIGKILL: no clean-up runs, yet the lock goes with the process
        process.wait()
    run = training.train(config, show=False)  # the dead run saved no checkpoint: this one starts at 0
    assert (run.start_step, run.step) == (0, 2)


@pytest.mark.slow
def test_training_survives_kill_9_at_random_moments(tmp_path, made_faces, cache_dir):
    """SIGKILL at random moments, some inside checkpoint or grid writes (a checkpoint every 2 steps of ~50 ms):
    every restart resumes from the newest complete checkpoint, the step never goes backwards, at most one
    checkpoint interval is lost, and the last checkpoint restores and draws finite faces."""
    checkpoint_dir = str(tmp_path / "my_net")
    random = np.random.default_rng(7)
    previous_checkpoint = logged = 0
    for attempt in range(10):
        with open(tmp_path / f"log{attempt}.txt", "w") as log:
            process = start_training(tmp_path, made_faces, cache_dir, log, checkpoint_every=2, sample_every=1)
            wait_until_logged_past(process, checkpoint_dir, logged)
            time.sleep(random.uniform(0, 1.0))
            process.kill()
            process.wait()
        output = (tmp_path / f"log{attempt}.txt").read_text()
        if attempt:
            assert f"at step {previous_checkpoint}, toward" in output  # resumed from the newest checkpoint
        steps = [row["step"] for row in runs.read_losses(checkpoint_dir)]
        assert steps == list(range(1, len(steps) + 1))  # the log went on right after the restored step
        logged = steps[-1]
        gan = DCGAN.from_config(Config(**TINY))
        restored = runs.restore(gan, checkpoint_dir)
        checkpoint_step = int(gan.step.numpy())
        assert restored.endswith(f"ckpt-{checkpoint_step}") if restored else checkpoint_step == 0
        assert checkpoint_step >= previous_checkpoint  # never backwards
        assert logged - checkpoint_step <= 2  # at most one checkpoint interval lost
        previous_checkpoint = checkpoint_step
    run = training.train(tiny_config(tmp_path, made_faces, cache_dir, steps=previous_checkpoint + 1), show=False)
    assert run.start_step == previous_checkpoint
    leftovers = [name for folder in ("my_net", "imgs") for name in os.listdir(tmp_path / folder)
                 if name.endswith(".tmp") or name.endswith("_temp")]
    assert leftovers == []  # half-written files of killed runs are cleared, never read
    gan, _ = runs.load_gan(checkpoint_dir)
    assert np.isfinite(gan.generator(gan.grid_latents[:4], training=False).numpy()).all()


class PoisonWeights(keras.callbacks.Callback):
    """Writes NaN into the discriminator at a given step, as a diverging run would."""

    def __init__(self, at_step):
        super().__init__()
        self.at_step = at_step

    def on_train_batch_end(self, batch, logs=None):
        if int(logs["step"]) == self.at_step:
            kernel = self.model.discriminator.get_layer("logit").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


@pytest.mark.slow
def test_divergence_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=20, checkpoint_every=2, keep_checkpoints=10)
    with pytest.raises(FloatingPointError, match=r"not finite at step (5|6).*last good checkpoint is .*ckpt-4"):
        training.train(config, show=False, callbacks=[PoisonWeights(at_step=5)])
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [2, 4]
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert callbacks.weights_are_finite(gan) and int(gan.step.numpy()) == 4
    resumed = training.train(config, show=False, steps=6)  # the user can go on from the good checkpoint
    assert (resumed.start_step, resumed.step) == (4, 6)


@pytest.mark.slow
def test_unwritable_folders_and_failed_writes_give_one_clear_error(tmp_path, made_faces, cache_dir, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OSError, match=r"checkpoint_dir .*a_file/my_net cannot be written.*writable folder"):
        training.train(tiny_config(tmp_path, made_faces, cache_dir, checkpoint_dir=str(tmp_path / "a_file" / "my_net")),
                       show=False)
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=4, checkpoint_every=2)
    training.train(config, show=False, steps=2)
    saved = (tmp_path / "my_net" / "ckpt-2.index").read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(training.tf.train.CheckpointManager, "save", disk_full)
    with pytest.raises(OSError, match=r"Could not write the checkpoint of step 4 in .*my_net: No space left on "
                                      r"device\. What was saved before is intact"):
        training.train(config, show=False)
    monkeypatch.undo()
    assert (tmp_path / "my_net" / "ckpt-2.index").read_bytes() == saved
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert int(gan.step.numpy()) == 2


@pytest.mark.parametrize("setting, message", [
    (dict(steps=-1), "steps must be a whole number of at least 1"),
    (dict(batch_size=0), "batch_size must be a whole number of at least 1"),
    (dict(batch_size=6000), r"batch_size \(6000\) is larger than the number of faces \(160\)"),
    (dict(precision="half"), "precision must be one of"),
])
def test_bad_settings_are_refused_before_training(tmp_path, made_faces, cache_dir, setting, message):
    with pytest.raises(ValueError, match=message):
        training.train(tiny_config(tmp_path, made_faces, cache_dir), show=False, **setting)
    assert not runs.list_checkpoints(str(tmp_path / "my_net"))


def test_a_data_path_that_is_a_plain_file_is_refused(tmp_path, made_faces, cache_dir):
    (tmp_path / "faces.txt").write_text("not a folder")
    with pytest.raises(ValueError, match=r"image_path .*faces.txt is a file but not a zip"):
        training.train(tiny_config(tmp_path, made_faces, cache_dir, image_path=str(tmp_path / "faces.txt")), show=False)


# ----------------------------------------------------------------------------- devices

DISTRIBUTED_RUN = """
import json
import facegan
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras, numpy as np
from facegan import runs, training

report = {{}}

class CompareReplicas(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        variables = self.model.generator.trainable_variables + self.model.discriminator.trainable_variables
        copies = [variable.value.values for variable in variables]
        report["replicas"] = len(copies[0])
        report["identical"] = all(all(np.array_equal(c[0].numpy(), other.numpy()) for other in c[1:])
                                  for c in copies)
        generator_copies = copies[:len(self.model.generator.trainable_variables)]
        report["generator_sum"] = float(sum(np.sum(c[0].numpy()) for c in generator_copies))

run = training.train(show=False, callbacks=[CompareReplicas()], **{settings!r})
report["losses"] = [[row["discriminator_loss"], row["generator_loss"]]
                    for row in runs.read_losses({checkpoint_dir!r})]
report["step"] = run.step
print("REPORT" + json.dumps(report))
"""


@pytest.mark.slow
@pytest.mark.parametrize("variant", [dict(resident_data=False),
                                     dict(resident_data=True, discriminator_norm="spectral")],
                         ids=["streamed", "resident-spectral"])
def test_mirrored_strategy_on_two_cpu_devices_trains_checkpoints_once_and_resumes_on_one(tmp_path, made_faces,
                                                                                         cache_dir, variant):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=3, checkpoint_every=3, strategy="mirrored", **variant)
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "checkpoint_every",
                                                         "sample_every", "checkpoint_dir", "sample_dir", "strategy",
                                                         *TINY, *variant)}
    script = DISTRIBUTED_RUN.format(settings=settings, checkpoint_dir=config.outputs.checkpoint_dir)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT", 1)[1])
    assert report["replicas"] == 2 and report["identical"]  # both devices hold the same weights after each step
    assert report["step"] == 3 and len(report["losses"]) == 3 and np.isfinite(report["losses"]).all()
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [3]  # written once
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png"]

    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)  # a checkpoint of 2 devices restores on 1
    restored_sum = float(sum(np.sum(v.numpy()) for v in gan.generator.trainable_variables))
    assert restored_sum == pytest.approx(report["generator_sum"], rel=1e-6)
    resumed = training.train(config, show=False, steps=4, strategy="default")
    assert (resumed.start_step, resumed.step) == (3, 4)


@pytest.mark.slow
def test_faces_kept_on_the_device_train_exactly_as_faces_streamed_from_memory(tmp_path, made_faces, cache_dir):
    weights = []
    for resident in (False, True):
        keras.utils.set_random_seed(7)  # the same initial networks
        config = tiny_config(tmp_path / f"resident-{resident}", made_faces, cache_dir, steps=3, resident_data=resident)
        assert training.train(config, show=False).step == 3
        gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
        assert gan.resident_images is None  # the copy of the faces is not part of the checkpoint
        weights.append([w.numpy() for w in gan.generator.weights + gan.discriminator.weights])
    for streamed, resident in zip(*weights):
        np.testing.assert_array_equal(streamed, resident)


@pytest.mark.slow
def test_several_steps_per_call_still_write_grids_checkpoints_and_every_log_row(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=6, steps_per_execution=3, sample_every=2,
                         checkpoint_every=4)
    run = training.train(config, show=False)
    assert run.step == 6
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [6]  # step 4 falls in 4..6
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-3.png", "examples-6.png"]  # steps 1, 3, 5 fell due
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [3, 6]  # one row per call


def test_an_unknown_strategy_is_refused_by_name():
    with pytest.raises(ValueError, match="strategy must be one of default, mirrored, multi_worker"):
        Config(strategy="tpu")


@pytest.mark.slow
def test_the_moving_average_survives_a_checkpoint_and_draws_the_grids(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=3, sample_every=100)
    training.train(config, show=False)
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert gan.ema_generator is not None
    average = [w.numpy() for w in gan.ema_generator.trainable_weights]
    trained = [w.numpy() for w in gan.generator.trainable_weights]
    assert any(not np.array_equal(a, t) for a, t in zip(average, trained))  # restored as its own weights
    grid = np.asarray(Image.open(tmp_path / "imgs" / "examples-3.png"))
    generator = drawing.ready_generator(gan)
    assert generator.network is gan.ema_generator
    drawn = image_grid(drawing.draw_faces(generator, generator.grid_latents), 10, 10)
    np.testing.assert_array_equal(grid, drawn)  # the grid came from the moving average
    assert any(not np.array_equal(a.numpy(), t.numpy()) for a, t in zip(  # with batch-norm statistics of its own
        gan.ema_generator.non_trainable_weights, gan.generator.non_trainable_weights))
    with pytest.raises(ValueError, match=r"uses_ema True \(saved\) vs False \(requested\)"):
        training.train(config, show=False, steps=4, ema_decay=0)


def test_only_the_chief_writes_in_a_multi_machine_run():
    import types

    def strategy(cluster, task_type, task_id):
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id)
        return types.SimpleNamespace(cluster_resolver=resolver)

    workers = {"worker": ["host0:2222", "host1:2222"]}
    assert devices.is_chief(strategy(workers, "worker", 0)) and not devices.is_chief(strategy(workers, "worker", 1))
    with_chief = {"chief": ["host9:2222"], **workers}
    assert devices.is_chief(strategy(with_chief, "chief", 0))
    assert not devices.is_chief(strategy(with_chief, "worker", 0))
    assert devices.is_chief(tf.distribute.get_strategy())  # one process: it writes


@pytest.mark.slow
def test_multi_worker_strategy_runs_as_a_single_worker_on_this_cpu(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, strategy="multi_worker")
    settings = dict(image_path=config.data.image_path, cache_dir=cache_dir, steps=2, checkpoint_every=2,
                    checkpoint_dir=config.outputs.checkpoint_dir, sample_dir=config.outputs.sample_dir,
                    strategy="multi_worker", **TINY)
    script = ("from facegan import training; "
              f"run = training.train(show=False, **{settings!r}); print('STEP', run.step)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env={key: value for key, value in os.environ.items() if key != "TF_CONFIG"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "STEP 2" in result.stdout
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [2]
