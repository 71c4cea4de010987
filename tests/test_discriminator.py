"""facegan/metrics/discriminator.py: the discriminator's logits as it judges while training, nothing it holds
changed, and each group's mean over batches that mix the groups."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegan.config import Config
from facegan.metrics import discriminator
from facegan import networks
from conftest import TINY


def test_logits_are_the_training_mode_verdicts_and_leave_batch_norms_statistics_alone():
    judge = networks.build_discriminator(Config(**TINY).networks, seed=0)
    faces = np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)
    before = [weight.numpy().copy() for weight in judge.non_trainable_weights]
    got = discriminator.logits(judge, faces, batch_size=4)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in judge.layers)
    for after, then in zip(judge.non_trainable_weights, before):
        np.testing.assert_array_equal(after.numpy(), then)
    scaled = faces.astype(np.float32) / 127.5 - 1
    expected = np.concatenate([judge(tf.constant(scaled[start:start + 4]), training=True).numpy().ravel()
                               for start in (0, 4, 8)])  # the last batch of 2: its own statistics
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, judge(tf.constant(scaled), training=False).numpy().ravel(), atol=1e-3)


def test_each_groups_mean_is_its_faces_mean_whatever_the_shuffled_batches():
    brightness = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                                   keras.layers.Lambda(lambda x: tf.reduce_mean(x, axis=-1, keepdims=True))])
    faces = np.random.default_rng(1).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    bright = faces.mean(axis=(1, 2, 3)) > 127.5
    view = discriminator.mean_logits(brightness, faces, {"bright": bright, "dark": ~bright,
                                                         "none": np.zeros(30, bool)}, batch_size=7)
    per_face = faces.astype(np.float32).mean(axis=(1, 2, 3)) / 127.5 - 1
    assert view["bright"]["mean_logit"] == pytest.approx(per_face[bright].mean(), abs=1e-4)
    assert view["dark"]["faces"] == int((~bright).sum()) and view["dark"]["mean_logit"] < 0 < \
        view["bright"]["mean_logit"]
    assert view["none"] == dict(mean_logit=None, faces=0)
    with pytest.raises(ValueError, match="group 'short' marks 3 faces, there are 30"):
        discriminator.mean_logits(brightness, faces, {"short": np.ones(3, bool)})
