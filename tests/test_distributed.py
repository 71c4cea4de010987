"""Several replicas for real on this CPU: two worker processes on 127.0.0.1 (each with its own TF_CONFIG) train one
run with strategy="multi_worker": both finish with the same weights, each drew its own half of every global batch,
only the chief wrote the run's files, and the chief's checkpoint resumes as a two-worker run and as one process."""

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from experiments import speed
from facegan import runs
from conftest import TINY, tiny_config

WORKER = """
import json, sys
import numpy as np
import facegan
import keras
import tensorflow as tf
from facegan import training
from facegan.gan import DCGAN

settings, batches_file, weights_file = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
original_step = DCGAN.train_step

def recording_step(self, data):  # which faces (their indices: the faces are kept on the device) each replica drew
    tf.print(self.step, data, output_stream="file://" + batches_file, summarize=-1)
    return original_step(self, data)

DCGAN.train_step = recording_step

class SaveWeights(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        weights = self.model.generator.trainable_weights + self.model.discriminator.trainable_weights
        np.savez(weights_file, *[weight.numpy() for weight in weights])

run = training.train(show=False, callbacks=[SaveWeights()], **settings)
print("RUN", json.dumps(dict(start_step=run.start_step, step=run.step)))
"""


def run_workers(tmp_path, settings: dict, name: str, count: int = 2) -> list:
    """Start `count` workers of one multi-worker cluster on 127.0.0.1 and wait for all; returns each one's
    (result, batches file, weights file)."""
    files = (tmp_path / f"{name}-{{index}}-batches.txt", tmp_path / f"{name}-{{index}}-weights.npz")
    started = speed.start_workers(settings, count, WORKER, files)
    finished = []
    for index, process in enumerate(started):
        try:
            out, err = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other in started:
                other.kill()
            raise
        assert process.returncode == 0, err[-3000:]
        finished.append((json.loads(out.split("RUN", 1)[1]), *(pathlib.Path(str(file).format(index=index))
                                                               for file in files)))
    return finished


def batches_drawn(path) -> dict:
    """step → the face indices one replica drew in it."""
    drawn = {}
    for line in path.read_text().splitlines():
        found = re.match(r"(\d+) \[([\d ]*)\]", line.strip())
        if found:
            drawn[int(found.group(1))] = [int(index) for index in found.group(2).split()]
    return drawn


@pytest.mark.slow
def test_two_workers_train_one_run_share_each_batch_and_the_chief_resumes_it(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=4, checkpoint_every=2, sample_every=2)
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "checkpoint_every",
                                                         "sample_every", "checkpoint_dir", "sample_dir", *TINY)}
    settings["strategy"] = "multi_worker"
    workers = run_workers(tmp_path, settings, "first")
    assert [run for run, _, _ in workers] == [dict(start_step=0, step=4)] * 2
    chief, other = ([np.load(weights)[key] for key in sorted(np.load(weights).files, key=lambda k: int(k[4:]))]
                    for _, _, weights in workers)
    assert len(chief) == len(other) > 0
    assert all(np.array_equal(a, b) for a, b in zip(chief, other))  # the same weights after every step
    drawn = [batches_drawn(batches) for _, batches, _ in workers]
    assert sorted(drawn[0]) == sorted(drawn[1]) == [0, 1, 2, 3]
    for step in range(4):  # the global batch split in two: each worker drew its own half
        halves = drawn[0][step], drawn[1][step]
        assert len(halves[0]) == len(halves[1]) == TINY["batch_size"] // 2 and not set(halves[0]) & set(halves[1])
    assert [step for step, _ in runs.list_checkpoints(config.outputs.checkpoint_dir)] == [2, 4]
    assert len(runs.read_starts(config.outputs.checkpoint_dir)) == 1  # one start recorded: the chief's
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == [1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png", "examples-4.png"]

    resumed = run_workers(tmp_path, dict(settings, steps=6), "resumed")  # the chief's checkpoint, two workers
    assert [run for run, _, _ in resumed] == [dict(start_step=4, step=6)] * 2
    from facegan import training

    alone = training.train(config, show=False, steps=7)  # and one process
    assert (alone.start_step, alone.step) == (6, 7)
    assert [row["step"] for row in runs.read_losses(config.outputs.checkpoint_dir)] == list(range(1, 8))


@pytest.mark.slow
def test_when_a_worker_dies_the_other_stops_with_a_clear_error_and_the_last_checkpoint_resumes(tmp_path, made_faces,
                                                                                                cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=100_000, checkpoint_every=3, sample_every=1000)
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "checkpoint_every",
                                                         "sample_every", "checkpoint_dir", "sample_dir", *TINY)}
    settings["strategy"] = "multi_worker"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    workers = speed.start_workers(settings, 2, WORKER, (tmp_path / "{index}-batches.txt",
                                                        tmp_path / "{index}-weights.npz"), scratch=scratch)
    deadline = time.monotonic() + 180
    while not runs.list_checkpoints(config.outputs.checkpoint_dir) and time.monotonic() < deadline:
        time.sleep(1)
    assert runs.list_checkpoints(config.outputs.checkpoint_dir), "the chief wrote no checkpoint in 3 minutes"
    workers[1].kill()  # the other worker dies at once, mid-run
    killed_at = time.monotonic()
    try:
        _, err = workers[0].communicate(timeout=150)
    finally:
        for worker in workers:
            worker.kill()
    assert workers[0].returncode != 0 and time.monotonic() - killed_at < 150
    assert "A worker of this multi-worker run stopped answering" in err and "Start every worker again" in err, \
        err[-3000:]
    # the killed worker could not remove its scratch folder: it stays in the temporary folder it was given (here
    # the test's), outside the run's folder
    assert len([path for path in scratch.iterdir() if path.name.startswith("dcgan-worker-")]) == 1
    from facegan import training

    kept = runs.list_checkpoints(config.outputs.checkpoint_dir)  # what was saved before is intact, and resumes
    resumed = training.train(config, show=False, steps=kept[-1][0] + 1)
    assert (resumed.start_step, resumed.step) == (kept[-1][0], kept[-1][0] + 1)


LOGICAL_DEVICES = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]  # the CPU as two devices: the multi-GPU branch, on this machine
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import facegan
import keras
import numpy as np
from facegan import runs, training

settings, folder = json.loads(sys.argv[1]), sys.argv[2]
results = {}
JOINT = "joint_constant_statistics"  # joint batches, with the generator's step's statistics all-reduced constants
REUSED = "joint_reused_statistics"  # the same, the real half's statistics recorded by the discriminator's step

class SaveState(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        gan = self.model
        self.replicas = gan.distribute_strategy.num_replicas_in_sync
        self.weights = [w.numpy().tolist() for w in gan.generator.weights + gan.discriminator.weights
                        + gan.ema_generator.weights + gan.extra_averages[50].weights]

for name, extra in [("one device", dict(strategy="default")), ("two devices", dict(strategy="mirrored")),
                    ("two devices, streamed", dict(strategy="mirrored", resident_data=False)),
                    ("one device, joint", dict(strategy="default", discriminator_batches=JOINT)),
                    ("two devices, joint", dict(strategy="mirrored", discriminator_batches=JOINT)),
                    ("one device, reused", dict(strategy="default", discriminator_batches=REUSED)),
                    ("two devices, reused", dict(strategy="mirrored", discriminator_batches=REUSED))]:
    keras.utils.set_random_seed(1)  # the same initial weights in each run
    state = SaveState()
    where = dict(checkpoint_dir=f"{folder}/{name}/my_net", sample_dir=f"{folder}/{name}/imgs")
    training.train(show=False, callbacks=[state], **settings, **extra, **where)
    losses = [[row["discriminator_loss"], row["generator_loss"]] for row in runs.read_losses(where["checkpoint_dir"])]
    results[name] = dict(replicas=state.replicas, weights=state.weights, losses=losses)
try:
    training.train(show=False, **dict(settings, batch_size=7, strategy="mirrored"))
except ValueError as error:
    results["odd batch"] = str(error)
try:  # 12 faces pass Config (three groups of 4) but give each device 6
    training.train(show=False, **dict(settings, batch_size=12, minibatch_stddev=4, discriminator_batches="separate",
                                      strategy="mirrored"))
except ValueError as error:
    results["split groups"] = str(error)
print("RESULTS", json.dumps(results))
"""


@pytest.mark.slow
def test_two_logical_devices_train_the_same_step_as_one_device_at_the_same_global_batch(tmp_path, made_faces,
                                                                                       cache_dir):
    """strategy="mirrored" on the CPU split in two: the moving average, DiffAugment and mirrored faces on, the
    faces kept on the devices (each replica gathers its own share) or streamed; the losses and every weight
    (batch norm's statistics, the average's and an extra average's too) match one device's, within float32
    round-off; and so with joint batches whose statistics the generator's step holds constant, measured there or
    recorded by the discriminator's step. The runs share one process, as a notebook re-running training with
    other settings does: the joint runs' step differs from the first ones'."""
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=3, sample_every=100, flip_faces=True,
                         extra_averages=[50])
    assert config.recipe.uses_ema and config.recipe.diff_augment
    settings = {name: config.settings()[name] for name in ("image_path", "cache_dir", "steps", "sample_every",
                                                         "flip_faces", "extra_averages", *TINY)}
    finished = subprocess.run([sys.executable, "-c", LOGICAL_DEVICES, json.dumps(settings), str(tmp_path)],
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(finished.stdout.split("RESULTS", 1)[1])
    one = results["one device"]
    assert one["replicas"] == 1 and len(one["losses"]) == 3
    for name, alone in (("two devices", "one device"), ("two devices, streamed", "one device"),
                        ("two devices, joint", "one device, joint"), ("two devices, reused", "one device, reused")):
        assert results[name]["replicas"] == 2
        one = results[alone]
        np.testing.assert_allclose(results[name]["losses"], one["losses"], rtol=1e-4, err_msg=name)
        for mine, theirs in zip(results[name]["weights"], one["weights"]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-3, atol=2e-5, err_msg=name)
    assert "batch_size (7)" in results["odd batch"] and "2 devices" in results["odd batch"]
    assert "gets 6 faces" in results["split groups"] and "groups of 4" in results["split groups"]
