"""training: a real tiny run on the CelebA sample, resume, stop by signal, refusals, and the notebook."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import papermill
import pytest
from PIL import Image

import dcgan
import training
from conftest import ROOT, TINY


def tiny_config(tmp_path, celeba, cache_dir, **settings):
    values = dict(image_path=str(celeba / "img_align_celeba"), cache_dir=cache_dir, steps=3, sample_every=2,
                  checkpoint_every=2, checkpoint_dir=str(tmp_path / "my_net"), sample_dir=str(tmp_path / "imgs"),
                  **TINY)
    values.update(settings)
    return dcgan.Config(**values)


def assert_grid_of_64px_faces(path):
    with Image.open(path) as grid:
        picture = np.asarray(grid)
    assert picture.shape == (640, 640, 3)
    tiles = picture.reshape(10, 64, 10, 64, 3).swapaxes(1, 2).reshape(100, -1)
    assert len({tile.tobytes() for tile in tiles}) == 100  # 100 different faces, one per fixed vector


def test_train_writes_checkpoints_config_losses_and_grids_then_resumes(tmp_path, celeba, cache_dir):
    config = tiny_config(tmp_path, celeba, cache_dir)
    first = training.train(config, show=False)
    assert (first.start_step, first.step, first.stopped) == (0, 3, False)
    saved = json.loads((tmp_path / "my_net" / "config.json").read_text())
    assert {name: saved[name] for name in dcgan.NETWORK_FIELDS} == {name: getattr(config, name)
                                                                      for name in dcgan.NETWORK_FIELDS}
    assert sorted(f for f in os.listdir(tmp_path / "my_net") if f.endswith(".index")) == ["ckpt-2.index",
                                                                                            "ckpt-3.index"]
    assert [row["step"] for row in training.read_losses(config.checkpoint_dir)] == [1, 2, 3]
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png"]
    assert_grid_of_64px_faces(tmp_path / "imgs" / "examples-1.png")
    first_grid = (tmp_path / "imgs" / "examples-1.png").read_bytes()
    gan, _ = training.load_gan(config.checkpoint_dir)
    grid_latents = gan.grid_latents.numpy()

    second = training.train(config, show=False, steps=6)
    assert (second.start_step, second.step) == (3, 6)
    assert [row["step"] for row in training.read_losses(config.checkpoint_dir)] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "imgs" / "examples-1.png").read_bytes() == first_grid  # not rewritten from scratch
    assert sorted(os.listdir(tmp_path / "imgs")) == ["examples-1.png", "examples-3.png", "examples-5.png",
                                                     "examples-6.png"]
    resumed, _ = training.load_gan(config.checkpoint_dir)
    assert int(resumed.step.numpy()) == 6
    np.testing.assert_array_equal(resumed.grid_latents.numpy(), grid_latents)  # grids line up across the stop
    assert int(resumed.generator_optimizer.iterations.numpy()) == 6  # optimizer state came back too

    again = training.train(config, show=False, steps=6)  # nothing left to do
    assert (again.start_step, again.step) == (6, 6)


def test_resuming_an_older_checkpoint_drops_the_loss_rows_it_does_not_hold(tmp_path, celeba, cache_dir):
    config = tiny_config(tmp_path, celeba, cache_dir, steps=3, checkpoint_every=10)
    training.train(config, show=False)
    with open(os.path.join(config.checkpoint_dir, training.LOSS_FILE), "a") as handle:
        handle.write("4,0.5,0.5,10,1\n5,0.5")  # rows of steps lost in a crash, the last one half-written
    training.train(config, show=False, steps=4)
    assert [row["step"] for row in training.read_losses(config.checkpoint_dir)] == [1, 2, 3, 4]


def test_a_checkpoint_of_other_networks_is_refused_and_left_untouched(tmp_path, celeba, cache_dir):
    config = tiny_config(tmp_path, celeba, cache_dir, steps=2)
    training.train(config, show=False)
    before = {name: (tmp_path / "my_net" / name).read_bytes() for name in os.listdir(tmp_path / "my_net")
              if os.path.isfile(tmp_path / "my_net" / name)}
    with pytest.raises(ValueError, match=r"other networks: generator_width 4 \(saved\) vs 8 \(requested\)"):
        training.train(config, show=False, steps=4, generator_width=8)
    after = {name: (tmp_path / "my_net" / name).read_bytes() for name in before}
    assert after == before

    fresh = training.train(config, show=False, steps=2, generator_width=8, fresh=True)
    assert (fresh.start_step, fresh.step) == (0, 2)
    archived = tmp_path / "my_net" / "archive"
    (old_run,) = os.listdir(archived)
    assert json.loads((archived / old_run / "config.json").read_text())["generator_width"] == 4
    assert (tmp_path / "imgs" / "archive").is_dir()


def test_load_gan_without_a_run_says_to_train_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="No config.json in .*train first"):
        training.load_gan(str(tmp_path))


def test_sigterm_saves_a_checkpoint_of_the_step_reached(tmp_path, celeba, cache_dir):
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); import training; "
              f"training.train(image_path={str(celeba / 'img_align_celeba')!r}, cache_dir={cache_dir!r}, "
              f"steps=100000, checkpoint_every=100000, sample_every=100000, generator_width=4, "
              f"discriminator_width=4, z_dim=16, batch_size=8, show=False)")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, stderr=subprocess.PIPE)
    losses = tmp_path / "my_net" / training.LOSS_FILE
    deadline = time.time() + 120
    while time.time() < deadline and len(training.read_losses(str(tmp_path / "my_net"))) < 5:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    logged = training.read_losses(str(tmp_path / "my_net"))[-1]["step"]
    gan, _ = training.load_gan(str(tmp_path / "my_net"))
    assert int(gan.step.numpy()) == logged >= 5
    assert losses.is_file() and (tmp_path / "imgs" / f"examples-{logged}.png").is_file()


def test_the_notebook_trains_headless_and_resumes(tmp_path, celeba, cache_dir):
    parameters = dict(image_path=str(celeba / "img_align_celeba"), cache_dir=cache_dir, steps=2, sample_every=100,
                      checkpoint_every=100, checkpoint_dir=str(tmp_path / "my_net"),
                      sample_dir=str(tmp_path / "imgs"), **TINY)
    papermill.execute_notebook(str(ROOT / "gan_new.ipynb"), str(tmp_path / "out1.ipynb"), parameters=parameters,
                               cwd=str(ROOT), progress_bar=False)
    assert_grid_of_64px_faces(tmp_path / "imgs" / "examples-1.png")
    assert (tmp_path / "my_net" / "config.json").is_file()
    assert [row["step"] for row in training.read_losses(str(tmp_path / "my_net"))] == [1, 2]
    first_grid = (tmp_path / "imgs" / "examples-1.png").read_bytes()

    papermill.execute_notebook(str(ROOT / "gan_new.ipynb"), str(tmp_path / "out2.ipynb"),
                               parameters=dict(parameters, steps=4), cwd=str(ROOT), progress_bar=False)
    output = json.dumps(json.loads((tmp_path / "out2.ipynb").read_text())["cells"])
    assert "resuming from" in output and "at step 2" in output
    assert [row["step"] for row in training.read_losses(str(tmp_path / "my_net"))] == [1, 2, 3, 4]
    assert (tmp_path / "imgs" / "examples-1.png").read_bytes() == first_grid
    assert "image/png" in output  # the real-faces grid, the sample grid and the loss plot were shown
