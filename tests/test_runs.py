"""runs: a saved run read back without the training loop: load_gan, damaged or foreign checkpoints, old configs,
and the record of every start."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from facegan.config import Config, PLAIN_RECIPE, flatten
from facegan import devices, runs
from facegan import training
from facegan.gan import DCGAN
from conftest import tiny_config


def test_load_gan_without_a_run_says_to_train_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="No config.json in .*train first"):
        runs.load_gan(str(tmp_path))


@pytest.mark.slow
def test_a_run_saved_before_the_recipe_settings_existed_restores_as_the_plain_recipe(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, **PLAIN_RECIPE)
    training.train(config, show=False)
    path = tmp_path / "my_net" / "config.json"
    saved = flatten(json.loads(path.read_text()))  # versions before the groups wrote one flat dictionary
    for name in ("ema_decay", "label_smoothing", "discriminator_norm", "flip_faces", "diff_augment", "resident_data"):
        del saved[name]  # what the first version wrote
    path.write_text(json.dumps(saved))
    gan, restored = runs.load_gan(str(tmp_path / "my_net"))
    assert int(gan.step.numpy()) == 2 and gan.ema_generator is None
    assert {name: restored.settings()[name] for name in PLAIN_RECIPE} == PLAIN_RECIPE
    # today's defaults (a moving average) ask for other networks: a clear refusal, and the run is left as it was
    with pytest.raises(ValueError, match="uses_ema False \\(saved\\) vs True \\(requested\\).*pass ema_decay=0.0 "):
        training.train(config.replace(ema_decay=0.999), show=False)
    assert json.loads(path.read_text()) == saved


@pytest.mark.slow
def test_a_damaged_newest_checkpoint_falls_back_to_an_older_one(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=4, checkpoint_every=2)
    training.train(config, show=False)
    data = tmp_path / "my_net" / "ckpt-4.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.warns(UserWarning, match=r"ckpt-4 is damaged"):
        run = training.train(config, show=False, steps=5)
    assert (run.start_step, run.step) == (2, 5)
    os.remove(tmp_path / "my_net" / "checkpoint")  # the state file lost: checkpoints are found by their index
    (tmp_path / "my_net" / "ckpt-5.index").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="ckpt-5 is damaged"):
        gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert int(gan.step.numpy()) in (2, 4)  # ckpt-4 was rewritten at step 4 of the resumed run
    for name in os.listdir(tmp_path / "my_net"):
        if name.startswith("ckpt-") and name.endswith(".index"):
            (tmp_path / "my_net" / name).write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"No checkpoint in .*my_net could be read .*damaged, or config.json"), \
            pytest.warns(UserWarning):
        runs.load_gan(config.outputs.checkpoint_dir)


@pytest.mark.slow
def test_extra_averages_are_saved_and_restored_and_one_begun_on_resuming_starts_from_the_trained_weights(
        tmp_path, made_faces, cache_dir):
    from facegan import drawing

    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, checkpoint_every=1, extra_averages=[500])
    training.train(config, show=False)
    gan, _ = runs.load_gan(config.outputs.checkpoint_dir)
    fresh = DCGAN.from_config(config)
    assert not np.array_equal(gan.extra_averages[500].trainable_weights[0].numpy(),
                              fresh.extra_averages[500].trainable_weights[0].numpy())  # restored, not new
    assert not np.array_equal(gan.extra_averages[500].trainable_weights[0].numpy(),
                              gan.generator.trainable_weights[0].numpy())
    # a second average begun on resuming: a warning, and it starts from the trained generator's weights
    with pytest.warns(UserWarning, match="holds no average of half-life 2000 images"):
        run = training.train(config.replace(extra_averages=[500, 2000]), show=False, steps=3)
    assert run.step == 3
    latest, _ = runs.load_gan(config.outputs.checkpoint_dir)
    assert sorted(latest.extra_averages) == [500, 2000]
    assert drawing.ready_generator(latest, half_life=2000).name == "average_2000"
    old, _ = runs.load_gan(config.outputs.checkpoint_dir, step=2)  # from before it was kept: it will not draw
    with pytest.raises(ValueError, match="holds no average of half-life 2000 images: the run began keeping it"):
        drawing.ready_generator(old, half_life=2000)
    with pytest.raises(ValueError, match="keeps no average of half-life 7 images \\(its extra_averages: 500, 2000"):
        drawing.ready_generator(latest, half_life=7)
    assert drawing.ready_generator(old, half_life=500).network is old.extra_averages[500]


@pytest.mark.slow
def test_a_config_that_does_not_match_its_checkpoint_is_a_clear_error(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=1)
    training.train(config, show=False)
    path = tmp_path / "my_net" / "config.json"
    path.write_text(path.read_text().replace('"generator_width": 4', '"generator_width": 8'))
    with pytest.raises(ValueError, match="config.json does not belong to them"), pytest.warns(UserWarning):
        runs.load_gan(config.outputs.checkpoint_dir)


@pytest.mark.slow
def test_every_start_of_a_run_is_recorded_with_its_settings_step_and_machine(tmp_path, made_faces, cache_dir):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2)
    training.train(config, show=False)
    with pytest.warns(UserWarning, match="label_smoothing 0.0 → 0.1"):
        training.train(config, show=False, steps=3, label_smoothing=0.1)
    with open(tmp_path / "my_net" / runs.STARTS_FILE, "a") as handle:
        handle.write('{"time": "2026-')  # a start cut off by a crash while writing
    starts = runs.read_starts(config.outputs.checkpoint_dir)
    assert [start["step"] for start in starts] == [0, 2]
    assert [start["settings"]["recipe"]["label_smoothing"] for start in starts] == [0.0, 0.1]  # the recipe's history
    assert Config.from_dict(starts[0]["settings"]) == config
    assert all(start["machine"] and start["precision"] == "float32" for start in starts)
    assert all(start["code"] == devices.code_version() for start in starts)  # which code each start ran
    assert runs.read_config(config.outputs.checkpoint_dir).recipe.label_smoothing == 0.1  # config.json: as it last
    # started


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_code_version_is_the_checkouts_commit_marked_when_its_files_changed(tmp_path):
    assert devices.code_version(str(tmp_path)) is None  # not a git checkout: an installed copy
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (tmp_path / "networks.py").write_text("width = 64\n")
    for command in (["init", "-q"], ["add", "networks.py"], ["commit", "-q", "-m", "first"]):
        subprocess.run(git + command, check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert devices.code_version(str(tmp_path)) == commit and len(commit) == 40
    (tmp_path / "notes.txt").write_text("an untracked file is not the code")
    assert devices.code_version(str(tmp_path)) == commit
    (tmp_path / "networks.py").write_text("width = 128\n")
    assert devices.code_version(str(tmp_path)) == commit + "+changes"


@pytest.mark.slow
def test_a_run_trained_in_bfloat16_draws_and_resumes_in_float32_on_a_machine_without_it(tmp_path, made_faces,
                                                                                          cache_dir):
    # "auto", the default, picks bfloat16 on one machine and float32 on another: the same checkpoint serves both
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, precision="mixed_bfloat16")
    training.train(config, show=False)
    in_bfloat16, _ = runs.load_gan(config.outputs.checkpoint_dir)
    in_float32, _ = runs.load_gan(config.outputs.checkpoint_dir, precision="float32")
    assert in_bfloat16.generator.get_layer("up1").compute_dtype == "bfloat16"
    assert in_float32.generator.get_layer("up1").compute_dtype == "float32"
    for saved, loaded in zip(in_bfloat16.generator.weights, in_float32.generator.weights):
        assert saved.dtype == loaded.dtype == "float32" and np.array_equal(saved.numpy(), loaded.numpy())
    z = np.random.default_rng(0).standard_normal((8, config.networks.z_dim)).astype("float32")
    faces_bfloat16 = in_bfloat16.generator(z, training=False).numpy()
    faces_float32 = in_float32.generator(z, training=False).numpy()
    assert 0 < np.abs(faces_bfloat16 - faces_float32).max() < 0.1  # the same faces, to bfloat16's precision
    with pytest.warns(UserWarning, match="precision mixed_bfloat16 → float32"):
        training.train(config, show=False, steps=3, precision="float32")
    assert int(runs.load_gan(config.outputs.checkpoint_dir)[0].step.numpy()) == 3
