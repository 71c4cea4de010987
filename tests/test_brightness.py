"""experiments/brightness: the faces' brightness, the two changes of the probe, and the loss's slopes along them
with the discriminator's statistics live or held; a run measured once, then skipped."""

import contextlib
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from experiments import brightness
from facegan import networks, training
from facegan.config import Config
from facegan.gan import DCGAN
from conftest import TINY, tiny_config


def test_brightness_is_the_channels_mean_and_the_spread_of_each_faces_mean():
    faces = np.zeros((2, 4, 4, 3), np.uint8)
    faces[0], faces[1] = 100, 200
    faces[1, ..., 2] = 50  # the second face: 200, 200, 50 → its mean 150
    measured = brightness.brightness(faces)
    assert measured["mean_rgb"] == [150.0, 150.0, 75.0]
    assert measured["face_brightness_spread"] == 25.0  # faces' means 100 and 150
    assert measured["faces"] == 2
    with pytest.raises(ValueError, match="shape"):
        brightness.brightness(np.zeros((2, 4, 4), np.uint8))


def test_the_spread_change_scales_each_faces_deviation_and_the_shift_moves_every_face():
    fakes = tf.random.stateless_uniform((6, 8, 8, 3), (1, 2), -1, 1)
    means = tf.reduce_mean(fakes, axis=[1, 2, 3]).numpy()
    spread = tf.reduce_mean(brightness.changed_fakes(fakes, "spread", 0.5), axis=[1, 2, 3]).numpy()
    np.testing.assert_allclose(spread - spread.mean(), 1.5 * (means - means.mean()), atol=1e-6)
    np.testing.assert_allclose(spread.mean(), means.mean(), atol=1e-6)
    np.testing.assert_allclose(brightness.changed_fakes(fakes, "shift", 0.25).numpy(), fakes.numpy() + 0.25)
    with pytest.raises(ValueError, match="spread"):
        brightness.changed_fakes(fakes, "tilt", 0.1)


def varied_fakes(z, training=True):
    """Fakes whose brightness differs from face to face (z's first value) over a fixed pattern: what a trained
    generator draws, where a tiny one at its initial weights draws nearly the same grey for every z."""
    pattern = tf.random.stateless_uniform((1, 64, 64, 3), (9, 9), -0.5, 0.5)
    return tf.tanh(pattern + 0.3 * tf.reshape(z[:, 0], (-1, 1, 1, 1)))


def test_the_slopes_are_the_losss_gradient_along_each_change_with_the_statistics_live_or_held(monkeypatch):
    keras.utils.set_random_seed(3)
    gan = DCGAN.from_config(Config(**TINY, discriminator_batches="joint"))
    monkeypatch.setattr(gan, "generator", varied_fakes)
    real = np.random.default_rng(0).integers(0, 256, (20, 64, 64, 3), dtype=np.uint8)
    slopes = brightness.loss_slopes(gan, real, batches=1, seed=5)
    assert set(slopes) == {"spread", "shift"}
    # the same batch, by another route: the gradient with respect to the fakes, along each change's direction
    rng = np.random.default_rng(5)
    real_batch = tf.constant(real[rng.choice(len(real), 8, replace=False)].astype(np.float32) / 127.5 - 1)
    fakes = varied_fakes(rng.standard_normal((8, TINY["z_dim"])).astype(np.float32))
    face_means = tf.reduce_mean(fakes, axis=[1, 2, 3], keepdims=True)
    directions = dict(spread=(face_means - tf.reduce_mean(face_means)) * tf.ones_like(fakes), shift=tf.ones_like(fakes))
    for held in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(fakes)
            with networks.constant_statistics(gan.discriminator) if held else contextlib.nullcontext():
                logits = gan.discriminator(tf.concat([real_batch, fakes], 0), training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-logits[8:]))
        gradient = tape.gradient(loss, fakes)
        for kind, direction in directions.items():
            expected = float(tf.reduce_sum(gradient * direction))
            assert slopes[kind]["held" if held else "live"] == pytest.approx(expected, rel=1e-3), (kind, held)
    for kind in ("spread", "shift"):  # the statistics' path is there, and holding them takes it out
        assert abs(slopes[kind]["held"] - slopes[kind]["live"]) > 0.05 * abs(slopes[kind]["live"]), kind
    with pytest.raises(ValueError, match="at least 8 real faces"):
        brightness.loss_slopes(gan, real[:4])


def test_checkpoints_are_run_and_step():
    assert brightness.parse_checkpoints("joint_batches-seed1:8000,a:b:5") == [("joint_batches-seed1", 8000),
                                                                              ("a:b", 5)]
    for bad in ("joint", "joint:", ":5", "joint:x"):
        with pytest.raises(ValueError, match="run:step"):
            brightness.parse_checkpoints(bad)


def test_a_run_is_measured_once_with_its_provenance(tmp_path, made_faces, cache_dir, monkeypatch):
    config = tiny_config(tmp_path, made_faces, cache_dir, steps=2, checkpoint_every=2,
                         checkpoint_dir=str(tmp_path / "runs" / "tiny" / "my_net"),
                         sample_dir=str(tmp_path / "runs" / "tiny" / "imgs"), discriminator_batches="joint")
    training.train(config, show=False)
    out = tmp_path / "out"
    brightness.measure(str(made_faces), str(tmp_path / "runs"), [("tiny", 2)], str(out), cache_dir)
    results = json.loads((out / "results.json").read_text())
    record = results["tiny@2"]
    assert record["discriminator_batches"] == "joint" and record["step"] == 2
    assert set(record["faces"]) == {"average_precise_bn", "trained"}
    assert record["faces"]["trained"]["faces"] == 2048 and len(record["faces"]["trained"]["mean_rgb"]) == 3
    assert set(record["statistics"]) == {"spread", "shift"}
    assert results["real faces"]["faces"] > 0 and "machine" in results["measured"]["tiny@2"]

    def fail(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr("facegan.runs.load_gan", fail)
    brightness.measure(str(made_faces), str(tmp_path / "runs"), [("tiny", 2)], str(out), cache_dir)
