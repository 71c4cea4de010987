"""dcgan: the networks' shapes, the losses, one real training step, batch independence, settings."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan
from conftest import TINY


def test_default_networks_have_the_dcgan_shapes():
    config = dcgan.Config()
    generator = dcgan.build_generator(config)
    shapes = [tuple(layer.output.shape[1:]) for layer in generator.layers
              if layer.name in ("project_bn", "up1_bn", "up2_bn", "up3_bn", "image")]
    assert shapes == [(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64), (64, 64, 3)]
    discriminator = dcgan.build_discriminator(config)
    shapes = [tuple(layer.output.shape[1:]) for layer in discriminator.layers if layer.name.startswith("down")
              and not layer.name.endswith("_bn")]
    assert shapes == [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]
    norms = [layer.name for layer in discriminator.layers if layer.name.endswith("_bn")]
    assert norms == ["down2_bn", "down3_bn", "down4_bn"]  # batch norm on every layer but the first
    assert discriminator.output.shape[1:] == (1,)
    weights = generator.get_layer("up2").kernel.numpy()
    assert abs(weights.mean()) < 0.002 and abs(weights.std() - 0.02) < 0.002  # N(0, 0.02)


def test_images_are_in_minus_one_to_one_and_logits_are_float32():
    config = dcgan.Config(**TINY)
    images = dcgan.build_generator(config)(tf.random.normal((3, config.z_dim)) * 10, training=False)
    assert images.shape == (3, 64, 64, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    logits = dcgan.build_discriminator(config)(images)
    assert logits.shape == (3, 1) and logits.dtype == tf.float32


def test_losses_at_an_undecided_discriminator():
    zeros = tf.zeros((4, 1))
    assert math.isclose(float(dcgan.discriminator_loss(zeros, zeros)), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(dcgan.generator_loss(zeros)), math.log(2), rel_tol=1e-6)
    assert float(dcgan.generator_loss(tf.fill((4, 1), 5.0))) < 0.01  # fooled discriminator: low generator loss


def one_step(config):
    gan = dcgan.DCGAN(config)
    gan.compile()
    before = [w.numpy().copy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    real = tf.random.uniform((config.batch_size, 64, 64, 3), -1, 1)
    logs = gan.train_step(real)
    after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    return gan, logs, before, after


def test_one_training_step_changes_both_networks_and_counts_the_step():
    gan, logs, before, after = one_step(dcgan.Config(**TINY))
    assert all(np.isfinite(float(logs[name])) for name in ("discriminator_loss", "generator_loss"))
    generator_count = len(gan.generator.trainable_weights)
    assert all(not np.array_equal(b, a) for b, a in zip(before[:generator_count], after[:generator_count]))
    assert all(not np.array_equal(b, a) for b, a in zip(before[generator_count:], after[generator_count:]))
    assert int(gan.step.numpy()) == 1 and int(gan.generator_optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("precision, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_trains_with_finite_losses_and_float32_outputs(precision, compute):
    gan, logs, before, after = one_step(dcgan.Config(precision=precision, **TINY))
    for _ in range(20):  # float16's dynamic loss scale starts at 2^15: the first steps may overflow and be skipped
        if any(not np.array_equal(b, a) for b, a in zip(before, after)):
            break
        logs = gan.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1))
        after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    assert gan.generator.get_layer("up1").compute_dtype == compute
    assert gan.generator.get_layer("up1").kernel.dtype == "float32"  # weights stay float32
    assert gan.discriminator.get_layer("logit").compute_dtype == "float32"  # and the logits and losses
    assert np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"]))
    assert sum(not np.array_equal(b, a) for b, a in zip(before, after)) > len(before) // 2


def test_the_same_z_gives_the_same_face_alone_and_in_a_batch_of_100():
    config = dcgan.Config(**TINY)
    gan = dcgan.DCGAN(config)
    for _ in range(3):  # move the batch-norm statistics away from their initial values
        gan.train_step(tf.random.uniform((config.batch_size, 64, 64, 3), -1, 1))
    z = tf.random.normal((100, config.z_dim), seed=1)
    alone = dcgan.generate(gan.generator, z[:1])
    in_seven = dcgan.generate(gan.generator, z[:7])
    in_hundred = dcgan.generate(gan.generator, z)
    np.testing.assert_allclose(alone[0], in_hundred[0], atol=1e-5)
    np.testing.assert_allclose(in_seven, in_hundred[:7], atol=1e-5)
    in_training_mode = gan.generator(z, training=True)  # what the seed did: batch statistics
    assert float(tf.reduce_max(tf.abs(in_training_mode[0] - in_hundred[0]))) > 1e-3
    assert dcgan.generate(gan.generator, z, batch_size=30).shape == (100, 64, 64, 3)


@pytest.mark.parametrize("setting, message", [
    (dict(steps=0), "steps must be a whole number of at least 1"),
    (dict(batch_size=-5), "batch_size must be a whole number"),
    (dict(precision="float8"), "precision must be one of float32, mixed_bfloat16, mixed_float16"),
    (dict(image_size=48), "image_size must be a power of two"),
    (dict(generator_learning_rate=0), "generator_learning_rate must be above 0"),
])
def test_bad_settings_name_the_parameter(setting, message):
    with pytest.raises(ValueError, match=message):
        dcgan.Config(**setting)


def test_config_round_trips_through_json():
    config = dcgan.Config(attributes=["Smiling"], **TINY)
    assert dcgan.Config.from_dict(json.loads(config.to_json())) == config


def test_recomputed_batch_norm_statistics_make_inference_match_training_mode_from_the_start():
    config = dcgan.Config(**TINY)
    generator = dcgan.build_generator(config)
    z = tf.random.normal((100, config.z_dim), seed=4)
    training_mode = generator(z, training=True).numpy()
    before = dcgan.generate(generator, z).numpy()  # moving statistics still at their initial (0, 1)
    assert before.std() < 0.5 * training_mode.std()  # washed out: the seed's step-1 grids would be grey
    dcgan.recompute_batch_norm_statistics(generator, batch_size=100, batches=4, seed=1)
    after = dcgan.generate(generator, z).numpy()
    assert 0.8 < after.std() / training_mode.std() < 1.25
    assert np.abs(after - training_mode).mean() < 0.25 * np.abs(before - training_mode).mean()
    norm = generator.get_layer("up1_bn")
    probe = keras.Model(generator.inputs, norm.input)
    activations = probe(tf.random.normal((400, config.z_dim), seed=9), training=True).numpy()
    np.testing.assert_allclose(norm.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)), atol=0.2 *
                               activations.std())


def test_the_moving_average_moves_by_one_minus_decay_toward_the_new_weights():
    config = dcgan.Config(ema_decay=0.99, **TINY)
    gan = dcgan.DCGAN(config)
    gan.step.assign(100000)  # past the ramp-up: the decay is ema_decay itself
    before = [w.numpy().copy() for w in gan.ema_generator.trainable_weights]
    gan.train_step(tf.random.uniform((config.batch_size, 64, 64, 3), -1, 1))
    for average, old, new in zip(gan.ema_generator.trainable_weights, before, gan.generator.trainable_weights):
        np.testing.assert_allclose(average.numpy(), old + (1 - 0.99) * (new.numpy() - old), rtol=1e-5, atol=1e-7)
    for average, new in zip(gan.ema_generator.non_trainable_weights, gan.generator.non_trainable_weights):
        np.testing.assert_array_equal(average.numpy(), new.numpy())  # batch-norm statistics are copied
    assert gan.sampling_generator is gan.ema_generator
    assert float(gan.ema_decay_at(0)) == pytest.approx(0.1) and float(gan.ema_decay_at(10 ** 6)) == \
        pytest.approx(0.99)  # ramped up early, as tf.train.ExponentialMovingAverage does


def test_without_a_moving_average_the_trained_generator_draws_the_faces():
    gan = dcgan.DCGAN(dcgan.Config(ema_decay=0, **TINY))
    assert gan.ema_generator is None and gan.sampling_generator is gan.generator
    assert not hasattr(gan.checkpoint(), "ema_generator")
    assert hasattr(dcgan.DCGAN(dcgan.Config(**TINY)).checkpoint(), "ema_generator")  # on by default, saved
