"""score: the command line scores a checkpoint as training scored it (one scoring path), and a folder of images."""

import subprocess
import sys

import numpy as np
import pytest

from facegan import drawing
from facegan.config import Config
from facegan.metrics import maths, registry, sampler
from facegan import runs
from facegan import training
from conftest import ROOT, TINY

pytestmark = pytest.mark.slow


def score_command(*arguments, cache_dir):
    result = subprocess.run([sys.executable, str(ROOT / "score.py"), *arguments, "--cache-dir", cache_dir],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()


def test_the_score_logged_at_step_n_is_the_command_lines_score_of_step_ns_checkpoint(tmp_path, made_faces,
                                                                                      cache_dir):
    data = str(made_faces / "img_align_celeba")
    config = Config(image_path=data, cache_dir=cache_dir, steps=4, checkpoint_dir=str(tmp_path / "my_net"),
                          sample_dir=str(tmp_path / "imgs"), checkpoint_every=2, keep_checkpoints=5,
                          metrics_every=2, metric_samples=24, **TINY)
    training.train(config, show=False)
    logged = {row["step"]: row for row in runs.read_metrics(config.outputs.checkpoint_dir)}
    assert sorted(logged) == [2, 4]
    for step in (2, 4):
        lines = score_command("--checkpoint", config.outputs.checkpoint_dir, "--step", str(step), "--data", data,
                              "--samples", "24", "--metrics", "swd", cache_dir=cache_dir)
        printed = {line.split()[0]: float(line.split()[1]) for line in lines}
        for column in ("swd64", "swd32", "swd16", "swd"):  # the CSV keeps 6 digits, the command line 4 decimals
            assert printed[column] == pytest.approx(logged[step][column], abs=1e-4, rel=1e-5)
    assert logged[2]["swd"] != logged[4]["swd"]  # two networks, two scores: the match is not a constant
    # and in-process, as the notebook's last cell calls it: the same number to the last digit
    faces = training.load_training_faces(config, progress=False).images
    again = sampler.score_checkpoint(config.outputs.checkpoint_dir, faces, samples=24, names=["swd"], step=4,
                                   cache_dir=cache_dir)
    assert again["swd"] == pytest.approx(logged[4]["swd"], rel=1e-5)
    assert all(line.endswith("(24 generated vs 24 real faces)") for line in lines)


def test_a_folder_of_images_is_scored_against_the_real_faces(tmp_path, made_faces, cache_dir):
    data = str(made_faces / "img_align_celeba")
    same = score_command("--images", data, "--data", data, "--samples", "40", "--metrics", "swd",
                         cache_dir=cache_dir)
    generated = tmp_path / "generated"
    generated.mkdir()
    from PIL import Image
    for index in range(40):  # noise: nothing like a face
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            generated / f"{index}.png")
    noise = score_command("--images", str(generated), "--data", data, "--samples", "40", "--metrics", "swd",
                          cache_dir=cache_dir)
    swd = lambda lines: float(next(line for line in lines if line.startswith("swd ")).split()[1])  # noqa: E731
    assert swd(noise) > 2 * swd(same)


def test_a_folder_of_generated_faces_scores_as_the_faces_themselves(tmp_path, made_faces, cache_dir):
    # the faces of a real (tiny) generator, written as 64×64 PNGs: loading them must not crop or zoom them, so the
    # command line's score of the folder is the score of the arrays
    data = str(made_faces / "img_align_celeba")
    config = Config(image_path=data, cache_dir=cache_dir, steps=2, checkpoint_dir=str(tmp_path / "my_net"),
                          sample_dir=str(tmp_path / "imgs"), **TINY)
    training.train(config, show=False)
    faces = drawing.draw_faces(drawing.load_generator(config.outputs.checkpoint_dir), np.random.default_rng(0).normal(
        size=(40, config.networks.z_dim)).astype(np.float32))
    folder = tmp_path / "generated"
    folder.mkdir()
    from PIL import Image
    for index, face in enumerate(faces):
        Image.fromarray(face).save(folder / f"{index:04d}.png")
    lines = score_command("--images", str(folder), "--data", data, "--samples", "40", "--metrics", "swd",
                          cache_dir=cache_dir)
    printed = {line.split()[0]: float(line.split()[1]) for line in lines}
    real = training.load_training_faces(config, progress=False).images
    expected = registry.evaluate(faces, maths.real_sample(real, 40, 0), ["swd"], cache_dir, 0)
    for column in ("swd64", "swd32", "swd16", "swd"):
        assert printed[column] == pytest.approx(expected[column], abs=1e-4)


def test_unknown_metric_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="--metrics must be a non-empty list of swd, fid, kid, pr, got \\['is'\\]"):
        registry.check_names(["is"], "--metrics")
