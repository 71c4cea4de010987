"""networks.py, augment.py and gan.py: the networks' shapes, the losses, batch norm's statistics, the augmentations,
one real training step, the moving average and the recipe candidates."""

import contextlib
import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegan.config import Config, DIFF_AUGMENTATIONS, PLAIN_RECIPE, checkpoint_shape
from facegan import augment, networks
from facegan.gan import DCGAN
from facegan.noise import StepNoise
from conftest import TINY


def test_default_networks_have_the_dcgan_shapes():
    config = Config()
    generator = networks.build_generator(config.networks)
    shapes = [tuple(layer.output.shape[1:]) for layer in generator.layers
              if layer.name in ("project_bn", "up1_bn", "up2_bn", "up3_bn", "image")]
    assert shapes == [(4, 4, 512), (8, 8, 256), (16, 16, 128), (32, 32, 64), (64, 64, 3)]
    discriminator = networks.build_discriminator(config.networks)
    shapes = [tuple(layer.output.shape[1:]) for layer in discriminator.layers if layer.name.startswith("down")
              and not layer.name.endswith("_bn")]
    assert shapes == [(32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512)]
    norms = [layer.name for layer in discriminator.layers if layer.name.endswith("_bn")]
    assert norms == ["down2_bn", "down3_bn", "down4_bn"]  # batch norm on every layer but the first
    assert discriminator.output.shape[1:] == (1,)
    weights = generator.get_layer("up2").kernel.numpy()
    assert abs(weights.mean()) < 0.002 and abs(weights.std() - 0.02) < 0.002  # N(0, 0.02)


def test_images_are_in_minus_one_to_one_and_logits_are_float32():
    config = Config(**TINY)
    z = tf.random.normal((3, config.networks.z_dim)) * 10
    images = networks.build_generator(config.networks)(z, training=False)
    assert images.shape == (3, 64, 64, 3) and images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    logits = networks.build_discriminator(config.networks)(images)
    assert logits.shape == (3, 1) and logits.dtype == tf.float32


def test_losses_at_an_undecided_discriminator():
    zeros = tf.zeros((4, 1))
    assert math.isclose(float(networks.discriminator_loss(zeros, zeros)), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(float(networks.generator_loss(zeros)), math.log(2), rel_tol=1e-6)
    assert float(networks.generator_loss(tf.fill((4, 1), 5.0))) < 0.01  # fooled discriminator: low generator loss


def one_step(config):
    gan = DCGAN.from_config(config)
    gan.compile()
    before = [w.numpy().copy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    real = tf.random.uniform((config.training.batch_size, 64, 64, 3), -1, 1)
    logs = gan.train_step(real)
    after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    return gan, logs, before, after


def test_one_training_step_changes_both_networks_and_counts_the_step():
    gan, logs, before, after = one_step(Config(**TINY))
    assert all(np.isfinite(float(logs[name])) for name in ("discriminator_loss", "generator_loss"))
    generator_count = len(gan.generator.trainable_weights)
    assert all(not np.array_equal(b, a) for b, a in zip(before[:generator_count], after[:generator_count]))
    assert all(not np.array_equal(b, a) for b, a in zip(before[generator_count:], after[generator_count:]))
    assert int(gan.step.numpy()) == 1 and int(gan.generator_optimizer.iterations.numpy()) == 1


@pytest.mark.parametrize("precision, compute", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_trains_with_finite_losses_and_float32_outputs(precision, compute):
    gan, logs, before, after = one_step(Config(**{**TINY, "precision": precision}))
    for _ in range(20):  # float16's dynamic loss scale starts at 2^15: the first steps may overflow and be skipped
        if sum(not np.array_equal(b, a) for b, a in zip(before, after)) > len(before) // 2:
            break  # each optimizer's loss scale settles on its own: wait until both networks have moved
        logs = gan.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1))
        after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    assert gan.generator.get_layer("up1").compute_dtype == compute
    assert gan.generator.get_layer("up1").kernel.dtype == "float32"  # weights stay float32
    assert gan.discriminator.get_layer("logit").compute_dtype == "float32"  # and the logits and losses
    assert np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"]))
    assert sum(not np.array_equal(b, a) for b, a in zip(before, after)) > len(before) // 2


@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-5), ("mixed_bfloat16", 2e-2),
                                                   ("mixed_float16", 2e-3)])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(precision, tolerance):
    policy = keras.mixed_precision.DTypePolicy(precision)
    keras_norm = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    fused_norm = networks.FusedBatchNormalization(momentum=0.9, epsilon=1e-5, dtype=policy)
    x = tf.cast(tf.random.normal((20, 8, 8, 16), seed=2) * 3 + 1, policy.compute_dtype)
    gamma, beta = np.random.default_rng(3).normal(1.0, 0.5, 16), np.random.default_rng(4).normal(0.0, 1.0, 16)
    for norm in (keras_norm, fused_norm):
        norm.build(x.shape)
        norm.gamma.assign(gamma)
        norm.beta.assign(beta)
    weights = tf.constant(np.random.default_rng(5).normal(size=x.shape), tf.float32)
    gradients, outputs = [], []
    for norm in (keras_norm, fused_norm):
        with tf.GradientTape() as tape:
            tape.watch(x)
            output = tf.cast(norm(x, training=True), tf.float32)
            loss = tf.reduce_sum(output * weights)  # weights varying per element: gradients that do not vanish
        outputs.append(output.numpy())
        gradients.append([tf.cast(g, tf.float32).numpy() for g in tape.gradient(loss, [x, norm.gamma, norm.beta])])

    def close(a, b):  # relative to the values' scale
        np.testing.assert_allclose(a, b, atol=tolerance * max(1.0, float(np.abs(a).max())))

    close(outputs[0], outputs[1])
    assert fused_norm.compute_dtype == policy.compute_dtype and outputs[1].std() > 0.5
    for keras_gradient, fused_gradient in zip(*gradients):
        close(keras_gradient, fused_gradient)
    np.testing.assert_allclose(keras_norm.moving_mean.numpy(), fused_norm.moving_mean.numpy(), rtol=1e-3, atol=1e-4)
    # Keras moves toward the population variance; the fused kernel returns the Bessel-corrected one (×1280/1279
    # here), undone. Compare the batch variances the moving ones moved toward (momentum 0.9, from 1).
    batch_variances = [(norm.moving_variance.numpy() - 0.9) / 0.1 for norm in (keras_norm, fused_norm)]
    np.testing.assert_allclose(batch_variances[0], batch_variances[1], rtol=1e-4)
    assert batch_variances[1].min() > 4  # the statistics did move (x has variance 9)
    close(tf.cast(keras_norm(x), tf.float32).numpy(), tf.cast(fused_norm(x), tf.float32).numpy())  # inference mode


def test_the_networks_normalise_with_the_fused_kernel():
    gan = DCGAN.from_config(Config(**TINY))
    norms = [layer for model in (gan.generator, gan.discriminator) for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, networks.FusedBatchNormalization) for layer in norms)
    graph = tf.function(lambda z: gan.generator(z, training=True)).get_concrete_function(
        tf.TensorSpec((2, TINY["z_dim"]))).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "FusedBatchNormV3" in op_types and "SquaredDifference" not in op_types


@pytest.mark.parametrize("precision, tolerance", [("float32", 1e-6), ("mixed_bfloat16", 1e-2)])
def test_leaky_relu_gives_kerass_outputs_gradients_and_second_order_gradients(precision, tolerance):
    policy = keras.mixed_precision.DTypePolicy(precision)
    inputs = tf.constant(np.random.default_rng(6).normal(size=(4, 6, 6, 3)), tf.float32)
    layers = {}
    for kind in (keras.layers.LeakyReLU, networks.LeakyReLU):
        convolution = keras.layers.Conv2D(5, 3, padding="same", dtype=policy,
                                          kernel_initializer=keras.initializers.HeNormal(seed=1),
                                          bias_initializer=keras.initializers.Constant(0.5))
        layers[kind] = convolution, kind(0.2, dtype=policy)
        convolution.build(inputs.shape)
    keras_layers, our_layers = layers.values()
    for ours, theirs in zip(our_layers[0].weights, keras_layers[0].weights):
        ours.assign(theirs)
    weights = tf.constant(np.random.default_rng(7).normal(size=(4, 6, 6, 5)), tf.float32)
    results = []
    for convolution, activation in (keras_layers, our_layers):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                pre = convolution(inputs)
                pre = tf.where(tf.abs(pre) < 0.1, tf.zeros_like(pre), pre)  # exact zeros: the kink
                outputs = tf.cast(activation(pre), tf.float32)
                loss = tf.reduce_sum(outputs * weights)
            input_gradient = tf.cast(inner.gradient(loss, inputs), tf.float32)
            penalty = tf.reduce_sum(tf.square(input_gradient))  # R1's shape: a second-order gradient
        kernel_gradient = outer.gradient(penalty, convolution.kernel)
        results.append([outputs, input_gradient, kernel_gradient])
    assert float(tf.reduce_mean(tf.cast(tf.equal(results[0][0], 0.0), tf.float32))) > 0.05
    for keras_result, our_result in zip(*results):
        scale = max(1.0, float(tf.reduce_max(tf.abs(keras_result))))
        np.testing.assert_allclose(our_result.numpy(), keras_result.numpy(), atol=tolerance * scale)


def test_the_discriminators_activation_gradients_read_the_activations_outputs_so_they_can_fuse():
    gan = DCGAN.from_config(Config(**TINY))
    activations = [layer for layer in gan.discriminator.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert activations and all(isinstance(layer, networks.LeakyReLU) for layer in activations)

    def input_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = gan.discriminator(images, training=True)
        return tape.gradient(logits, images)

    graph = tf.function(input_gradient).get_concrete_function(tf.TensorSpec((2, 64, 64, 3))).graph
    gradients = [op for op in graph.get_operations() if op.type == "LeakyReluGrad"]
    assert len(gradients) == len(activations)
    for op in gradients:
        features = op.inputs[1].op
        assert features.type == "LeakyRelu" and len(features.inputs[0].consumers()) == 1  # the op before: one reader


@pytest.mark.parametrize("setting, message", [
    (dict(steps=0), "steps must be a whole number of at least 1"),
    (dict(batch_size=-5), "batch_size must be a whole number"),
    (dict(precision="float8"), "precision must be one of auto, float32, mixed_bfloat16, mixed_float16"),
    (dict(small_map_convolutions="gemm"), "small_map_convolutions must be one of auto, framework, matmul, got 'gemm'"),
    (dict(reuse_fakes=1), "reuse_fakes must be True or False"),
    (dict(image_size=48), "image_size must be a power of two"),
    (dict(generator_learning_rate=0), "generator_learning_rate must be above 0"),
    (dict(label_smoothing=0.7), "label_smoothing must be in"),
    (dict(discriminator_norm="layer"), "discriminator_norm must be one of batch, spectral"),
    (dict(flip_faces="yes"), "flip_faces must be True or False"),
    (dict(diff_augment=["cutout", "cutout"]), "diff_augment must list each of color, translation, cutout at most"),
    (dict(ema_statistics_batches=-1), "ema_statistics_batches must be a whole number"),
    (dict(ema_half_life=2.5), "ema_half_life must be a whole number of at least 0"),
    (dict(diff_augment=["blur"]), "diff_augment must list each of color, translation, cutout at most once"),
    (dict(minibatch_stddev=-1), "minibatch_stddev must be a whole number of at least 0"),
    (dict(learning_rate_decay=1.5), r"learning_rate_decay is the share of the run's last steps .* got 1.5"),
    (dict(r1_gamma=-1.0), "r1_gamma must be 0 \\(off\\) or above, got -1.0"),
    (dict(minibatch_stddev=3, batch_size=8),
     r"batch_size \(8\) must be a whole number of minibatch_stddev's groups of 3"),
    (dict(discriminator_batches="mixed"),
     "discriminator_batches must be one of separate, joint, joint_constant_statistics, joint_reused_statistics, "
     "got 'mixed'"),
    (dict(discriminator_batches="joint_constant_statistics", minibatch_stddev=4),
     "minibatch_stddev's groups would mix real and fake faces in a joint batch"),
    (dict(discriminator_batches="joint", minibatch_stddev=4),
     "minibatch_stddev's groups would mix real and fake faces in a joint batch"),
])
def test_bad_settings_name_the_parameter(setting, message):
    with pytest.raises(ValueError, match=message):
        Config(**setting)


def test_r1_is_gamma_over_two_times_the_squared_input_gradient_every_sixteenth_step_and_zero_between():
    gan = DCGAN.from_config(Config(**{**TINY, "r1_gamma": 0.3}))
    weights = tf.random.stateless_normal((64 * 64 * 3, 1), (3, 4))
    # a linear discriminator, D(x) = w·x: its input gradient is w for every face, so R1 = γ/2 · ‖w‖²
    gan.discriminator = lambda x, training=False: tf.matmul(tf.reshape(x, (tf.shape(x)[0], -1)), weights)
    faces = tf.random.stateless_uniform((4, 64, 64, 3), (5, 6), -1, 1)
    expected = 0.5 * 0.3 * 16 * float(tf.reduce_sum(tf.square(weights)))
    assert float(gan.r1_penalty(faces)) == pytest.approx(expected, rel=1e-5)
    gan.step.assign(1)
    assert float(gan.r1_penalty(faces)) == 0.0
    gan.step.assign(32)
    assert float(gan.r1_penalty(faces)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_r1_in_mixed_precision_measures_what_float32_measures(precision):
    exact = DCGAN.from_config(Config(**{**TINY, "r1_gamma": 1.0}))
    mixed = DCGAN.from_config(Config(**{**TINY, "r1_gamma": 1.0, "precision": precision}))
    mixed.discriminator.set_weights(exact.discriminator.get_weights())
    faces = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (9, 9), -1, 1)
    # the input gradient is taken unscaled: float16's loss scale (2^15 at first) would overflow it to inf
    assert float(mixed.r1_penalty(faces)) == pytest.approx(float(exact.r1_penalty(faces)), rel=0.05)


def discriminator_update(gamma: float, step: int):
    """The change one discriminator update makes, from the same networks and faces, at `step`."""
    keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**{**TINY, "r1_gamma": gamma}))
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (7, 8), -1, 1)
    fakes = gan.generator(tf.random.stateless_normal((TINY["batch_size"], TINY["z_dim"]), (1, 1)))
    gan.step.assign(step)
    before = [w.numpy() for w in gan.discriminator.trainable_weights]
    gan._discriminator_update(real, fakes, 1, lambda images: images)
    return [w.numpy() - b for w, b in zip(gan.discriminator.trainable_weights, before)]


def test_r1_changes_the_discriminators_update_on_its_steps_only():
    on, off = discriminator_update(10.0, 16), discriminator_update(0.0, 16)
    assert any(not np.allclose(a, b, atol=1e-7) for a, b in zip(on, off))
    for a, b in zip(discriminator_update(10.0, 17), discriminator_update(0.0, 17)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("step, factor", [(0, 1.0), (5, 1.0), (6, 0.8), (9, 0.2), (12, 0.0)])
def test_learning_rate_decay_falls_linearly_over_the_runs_last_share_of_steps(step, factor):
    gan = DCGAN.from_config(Config(**{**TINY, "steps": 10, "learning_rate_decay": 0.5,
                                      "generator_learning_rate": 1e-4, "discriminator_learning_rate": 4e-4}))
    gan.step.assign(step)
    gan.train_step(tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 2), -1, 1))
    assert float(gan.learning_rate_factor(step)) == pytest.approx(factor)
    assert float(gan.generator_optimizer.learning_rate) == pytest.approx(1e-4 * factor, rel=1e-6)
    assert float(gan.discriminator_optimizer.learning_rate) == pytest.approx(4e-4 * factor, rel=1e-6)


def test_a_run_resumed_with_new_learning_rates_trains_with_them_not_the_checkpoints(tmp_path):
    saved = DCGAN.from_config(Config(**{**TINY, "generator_learning_rate": 1e-4}))
    path = saved.checkpoint().save(str(tmp_path / "ckpt"))
    gan = DCGAN.from_config(Config(**{**TINY, "generator_learning_rate": 3e-4, "discriminator_learning_rate": 5e-4}))
    gan.checkpoint().restore(path).assert_existing_objects_matched()
    assert float(gan.generator_optimizer.learning_rate) == pytest.approx(1e-4)  # the checkpoint's, until a step
    gan.train_step(tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 2), -1, 1))
    assert float(gan.generator_optimizer.learning_rate) == pytest.approx(3e-4)
    assert float(gan.discriminator_optimizer.learning_rate) == pytest.approx(5e-4)


def test_config_round_trips_through_json():
    config = Config(attributes=["Smiling"], **TINY)
    assert Config.from_dict(json.loads(config.to_json())) == config


def test_recomputed_batch_norm_statistics_make_inference_match_training_mode_from_the_start():
    config = Config(**TINY)
    generator = networks.build_generator(config.networks)
    z = tf.random.normal((100, config.networks.z_dim), seed=4)
    training_mode = generator(z, training=True).numpy()
    before = generator(z, training=False).numpy()  # moving statistics still at their initial (0, 1)
    assert before.std() < 0.5 * training_mode.std()  # washed out: the seed's step-1 grids would be grey
    networks.recompute_batch_norm_statistics(generator, batch_size=100, batches=4, seed=1)
    after = generator(z, training=False).numpy()
    assert 0.8 < after.std() / training_mode.std() < 1.25
    assert np.abs(after - training_mode).mean() < 0.25 * np.abs(before - training_mode).mean()
    norm = generator.get_layer("up1_bn")
    probe = keras.Model(generator.inputs, norm.input)
    activations = probe(tf.random.normal((400, config.networks.z_dim), seed=9), training=True).numpy()
    np.testing.assert_allclose(norm.moving_mean.numpy(), activations.mean(axis=(0, 1, 2)), atol=0.2 *
                               activations.std())


def test_the_moving_average_moves_by_one_minus_decay_toward_the_new_weights():
    config = Config(ema_decay=0.99, **TINY)
    gan = DCGAN.from_config(config)
    gan.step.assign(100000)  # past the ramp-up: the decay is ema_decay itself
    before = [w.numpy().copy() for w in gan.ema_generator.trainable_weights]
    statistics = [w.numpy().copy() for w in gan.ema_generator.non_trainable_weights]
    gan.train_step(tf.random.uniform((config.training.batch_size, 64, 64, 3), -1, 1))
    for average, old, new in zip(gan.ema_generator.trainable_weights, before, gan.generator.trainable_weights):
        np.testing.assert_allclose(average.numpy(), old + (1 - 0.99) * (new.numpy() - old), rtol=1e-5, atol=1e-7)
    for average, old in zip(gan.ema_generator.non_trainable_weights, statistics):
        np.testing.assert_array_equal(average.numpy(), old)  # batch-norm statistics are the average's own
    assert any(not np.array_equal(a.numpy(), g.numpy()) for a, g in zip(gan.ema_generator.non_trainable_weights,
                                                                        gan.generator.non_trainable_weights))
    assert float(gan.ema_decay_at(0)) == pytest.approx(0.1) and float(gan.ema_decay_at(10 ** 6)) == \
        pytest.approx(0.99)  # ramped up early, as tf.train.ExponentialMovingAverage does


def test_an_average_with_a_half_life_in_images_forgets_half_in_that_many_images_once_ramped_up():
    gan = DCGAN.from_config(Config(**{**TINY, "batch_size": 100, "ema_half_life": 10_000}))
    late = float(gan.ema_decay_at(10 ** 6))
    assert late ** (10_000 / 100) == pytest.approx(0.5, rel=1e-4)  # 100 steps of 100 images: half forgotten
    # early the half-life is 5% of the images seen: after 999 steps (100,000 images), 5,000 images
    assert float(gan.ema_decay_at(999)) == pytest.approx(0.5 ** (100 / 5_000), rel=1e-6)
    assert float(gan.ema_decay_at(0)) == pytest.approx(0.5 ** (100 / 5), rel=1e-4)  # the first step: a copy
    assert float(gan.ema_decay_at(999)) < late


def test_the_average_draws_with_batch_norm_statistics_of_its_own_weights():
    gan = DCGAN.from_config(Config(**TINY))
    for average in gan.ema_generator.trainable_weights:  # an average far from the trained weights
        average.assign(average * 3.0 if "kernel" in average.path else average)
    z = tf.random.normal((100, gan.networks.z_dim), seed=3)

    def mismatch():  # how far faces drawn in inference mode are from the same faces in training mode
        drawn = gan.ema_generator(z, training=False)
        return float(tf.reduce_mean(tf.abs(drawn - gan.ema_generator(z, training=True))))

    gan.refresh_average_statistics(batches=0)  # the trained generator's statistics, as the average drew before
    for average, trained in zip(gan.ema_generator.non_trainable_weights, gan.generator.non_trainable_weights):
        np.testing.assert_array_equal(average.numpy(), trained.numpy())
    copied = mismatch()
    gan.refresh_average_statistics()  # the default: measured on its own faces
    own = [w.numpy().copy() for w in gan.ema_generator.non_trainable_weights]
    assert mismatch() < 0.5 * copied
    gan.refresh_average_statistics()  # the same z each time: refreshing again changes nothing
    for average, first in zip(gan.ema_generator.non_trainable_weights, own):
        np.testing.assert_array_equal(average.numpy(), first)
    without = DCGAN.from_config(Config(ema_decay=0, **TINY))
    before = [w.numpy().copy() for w in without.generator.weights]
    without.refresh_average_statistics()  # no average: nothing to do, the trained generator untouched
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, without.generator.weights))


def test_extra_averages_move_by_their_own_half_life_and_leave_training_and_the_average_unchanged():
    kept, kept_weights = trained_weights(steps=3, extra_averages=[400, 10_000])
    alone, alone_weights = trained_weights(steps=3)
    for a, b in zip(kept_weights, alone_weights):  # what trains is the same with them or without
        np.testing.assert_array_equal(a, b)
    for a, b in zip(kept.ema_generator.trainable_weights, alone.ema_generator.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert sorted(kept.extra_averages) == [400, 10_000]
    kept.step.assign(10 ** 6)  # past the ramp: each moves by 1 − 0.5 ** (batch / half-life) toward the weights
    before = {half_life: [w.numpy().copy() for w in network.trainable_weights]
              for half_life, network in kept.extra_averages.items()}
    kept.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1, seed=4))
    for half_life, network in kept.extra_averages.items():
        keep = 0.5 ** (TINY["batch_size"] / half_life)
        for average, old, new in zip(network.trainable_weights, before[half_life], kept.generator.trainable_weights):
            np.testing.assert_allclose(average.numpy(), keep * old + (1 - keep) * new.numpy(), rtol=1e-5, atol=1e-7)
    short, long = (kept.extra_averages[half_life].trainable_weights[0].numpy() for half_life in (400, 10_000))
    trained = kept.generator.trainable_weights[0].numpy()
    assert np.abs(short - trained).mean() < np.abs(long - trained).mean()  # the shorter follows closer
    assert not hasattr(kept.checkpoint(with_extra_averages=False), "extra_averages")
    assert hasattr(kept.checkpoint(), "extra_averages") and not hasattr(alone.checkpoint(), "extra_averages")


@pytest.mark.parametrize("value", [[0], [100, 100], [1.5], [True]])
def test_extra_averages_must_be_distinct_whole_half_lives(value):
    with pytest.raises(ValueError, match="extra_averages must list half-lives in images"):
        Config(extra_averages=value)


def test_without_a_moving_average_there_is_no_average_to_save():
    gan = DCGAN.from_config(Config(ema_decay=0, **TINY))
    assert gan.ema_generator is None
    assert not hasattr(gan.checkpoint(), "ema_generator")
    assert hasattr(DCGAN.from_config(Config(**TINY)).checkpoint(), "ema_generator")  # on by default, saved


# --------------------------------------------------------------------------------------------- recipe candidates

CANDIDATES = [dict(generator_learning_rate=1e-4, discriminator_learning_rate=4e-4), dict(label_smoothing=0.1),
              dict(discriminator_norm="spectral"), dict(flip_faces=True), dict(batchnorm_momentum=0.99),
              dict(diff_augment=["color", "translation", "cutout"]), dict(kernel_size=4),
              dict(reuse_fakes=True), dict(reuse_fakes=True, precision="mixed_bfloat16"),
              dict(minibatch_stddev=4, discriminator_batches="separate"),
              dict(minibatch_stddev=2, discriminator_norm="spectral", precision="mixed_bfloat16",
                   discriminator_batches="separate"),
              dict(r1_gamma=1.0), dict(r1_gamma=0.5, precision="mixed_bfloat16", reuse_fakes=True),
              dict(r1_gamma=0.5, precision="mixed_float16"),
              dict(learning_rate_decay=0.5, steps=4), dict(discriminator_batches="joint"),
              dict(discriminator_batches="joint", reuse_fakes=True, precision="mixed_bfloat16", r1_gamma=0.5),
              dict(discriminator_batches="joint_constant_statistics"),
              dict(discriminator_batches="joint_constant_statistics", reuse_fakes=True, precision="mixed_bfloat16"),
              dict(discriminator_batches="joint_reused_statistics", reuse_fakes=False),
              dict(discriminator_batches="joint_reused_statistics", reuse_fakes=True, precision="mixed_bfloat16"),
              dict(discriminator_batches="joint_reused_statistics", discriminator_norm="spectral")]


@pytest.mark.parametrize("setting", CANDIDATES, ids=lambda setting: ",".join(setting))
def test_each_candidate_setting_trains_a_few_real_steps_with_finite_losses(setting):
    gan, logs, before, after = one_step(Config(**{**PLAIN_RECIPE, **TINY, **setting}))
    for _ in range(2):
        logs = gan.train_step(tf.random.uniform((TINY["batch_size"], 64, 64, 3), -1, 1))
    after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    assert int(gan.step.numpy()) == 3
    assert np.isfinite(float(logs["discriminator_loss"])) and np.isfinite(float(logs["generator_loss"]))
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


def discriminator_that_normalises(gan):
    """The GAN's discriminator with every bias 0 and its kernels scaled up from N(0, 0.02), so that each layer is
    positively homogeneous and batch norm's variances are far above its epsilon: the faces' contrast then reaches
    the logits only through the batch's statistics."""
    for layer in gan.discriminator.layers:
        for weight in layer.weights:
            if weight.name.endswith("bias"):
                weight.assign(tf.zeros_like(weight))
            elif weight.name.endswith("kernel"):
                weight.assign(weight * 25.0)
    return gan


def test_separate_batches_hide_what_a_batch_of_fakes_shares_and_joint_batches_show_it():
    """The same faces at half their contrast: as a batch of their own, batch norm takes the difference out and the
    discriminator gives them the logits of the full-contrast faces; in a joint batch with those faces it cannot."""
    faces = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (7, 1), -1, 1)
    gaps = {}
    for batches in ("separate", "joint"):
        keras.utils.set_random_seed(2)
        gan = discriminator_that_normalises(DCGAN.from_config(Config(**TINY, discriminator_batches=batches)))
        real_logits, fake_logits = gan.discriminate(faces, 0.5 * faces)
        spread = float(tf.math.reduce_std(real_logits))
        gaps[batches] = float(tf.reduce_max(tf.abs(real_logits - fake_logits))) / spread
    assert gaps["separate"] < 1e-3  # blind to a whole batch's contrast
    assert gaps["joint"] > 0.1


def test_in_joint_batches_the_generators_logits_depend_on_the_real_faces_beside_its_fakes():
    fakes = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (3, 3), -1, 1)
    real = [tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (seed, 4), -1, 1) for seed in (1, 2)]
    differs = {}
    for batches in ("separate", "joint"):
        keras.utils.set_random_seed(2)
        gan = DCGAN.from_config(Config(**TINY, discriminator_batches=batches))
        first, second = (gan._generator_logits(faces, fakes) for faces in real)
        differs[batches] = not np.allclose(first.numpy(), second.numpy(), rtol=1e-4, atol=1e-5)
        if batches == "joint":  # the fakes' half of the joint call, no more
            np.testing.assert_allclose(first.numpy(), gan.discriminate(real[0], fakes)[1].numpy(), rtol=1e-5)
    assert differs == {"separate": False, "joint": True}


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_constant_statistics_keep_the_logits_and_cut_the_gradient_through_the_batch(precision):
    """joint_constant_statistics's generator step: the fakes' logits are the joint batch's, but the real faces
    beside them reach those logits only through the shared statistics, so held constant they get no gradient; and
    each fake's gradient comes through its own value only (a fake's logit then does not move with another fake)."""
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 5), -1, 1)
    fakes = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (2, 5), -1, 1)
    results = {}
    for constant in (False, True):
        keras.utils.set_random_seed(2)
        gan = DCGAN.from_config(Config(**{**TINY, "precision": precision}, discriminator_batches="joint"))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([real, fakes])
            with networks.constant_statistics(gan.discriminator) if constant else contextlib.nullcontext():
                logits = tf.cast(gan.discriminate(real, fakes)[1], tf.float32)
            first, total = logits[0], tf.reduce_sum(logits)
        results[constant] = dict(logits=logits.numpy(), to_real=tape.gradient(total, real),
                                 first_to_other_fakes=tape.gradient(first, fakes)[1:])
    spread = float(np.std(results[False]["logits"]))
    np.testing.assert_allclose(results[True]["logits"], results[False]["logits"],
                               atol=(1e-4 if precision == "float32" else 0.05) * spread)
    assert float(tf.reduce_max(tf.abs(results[False]["to_real"]))) > 0
    assert float(tf.reduce_max(tf.abs(results[False]["first_to_other_fakes"]))) > 0
    assert float(tf.reduce_max(tf.abs(results[True]["to_real"]))) == 0
    assert float(tf.reduce_max(tf.abs(results[True]["first_to_other_fakes"]))) == 0


def test_the_generators_step_of_joint_constant_statistics_holds_the_statistics_constant():
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 6), -1, 1)
    fakes = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (2, 6), -1, 1)
    gradients = {}
    for batches in ("joint", "joint_constant_statistics"):
        keras.utils.set_random_seed(2)
        gan = DCGAN.from_config(Config(**TINY, discriminator_batches=batches))
        with tf.GradientTape() as tape:
            tape.watch(fakes)
            first = gan._generator_logits(real, fakes)[0]
        gradients[batches] = float(tf.reduce_max(tf.abs(tape.gradient(first, fakes)[1:])))
    assert gradients["joint"] > 0 and gradients["joint_constant_statistics"] == 0


@pytest.mark.parametrize("shape", [(6, 5, 5, 8), (12, 8)], ids=["maps, fused kernel", "features, unfused"])
def test_held_statistics_normalise_by_the_batchs_moments_and_pass_the_gradient_by_gamma_over_its_deviation(shape):
    """The held path against its closed form: y = gamma (x - mean) / sqrt(variance + epsilon) + beta with the
    batch's population moments, and dL/dx = dL/dy gamma / sqrt(variance + epsilon), nothing through the moments."""
    model = keras.Sequential([keras.Input(shape[1:]), networks.FusedBatchNormalization(epsilon=1e-3)])
    norm = model.layers[0]
    norm.gamma.assign(tf.random.stateless_uniform(shape[-1:], (3, 1), 0.5, 1.5))
    norm.beta.assign(tf.random.stateless_normal(shape[-1:], (3, 2)))
    inputs = tf.random.stateless_normal(shape, (3, 3), 1.0, 2.0)
    weights = tf.random.stateless_normal(shape, (3, 4))
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        with networks.constant_statistics(model):
            outputs = model(inputs, training=True)
        loss = tf.reduce_sum(outputs * weights)
    axes = tuple(range(len(shape) - 1))
    mean, variance = np.mean(inputs.numpy(), axes), np.var(inputs.numpy(), axes)
    deviation = np.sqrt(variance + 1e-3)
    np.testing.assert_allclose(outputs.numpy(), norm.gamma.numpy() * (inputs.numpy() - mean) / deviation
                               + norm.beta.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(tape.gradient(loss, inputs).numpy(), weights.numpy() * norm.gamma.numpy() / deviation,
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_the_halves_taken_apart_give_the_joint_batchs_logits_and_gradients_with_held_statistics(precision, norm):
    """The generator's step's logits (held_statistics_logits: the real half without a backward pass) against the
    joint call inside constant_statistics: the same fake logits, the same gradient to the fakes, none to the real
    faces; a spectrally normalised discriminator (not taken half by half: the joint call itself) too."""
    assert networks.takes_halves_apart(DCGAN.from_config(Config(**TINY, discriminator_norm=norm)).discriminator) \
        == (norm == "batch")
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 7), -1, 1)
    fakes = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (2, 7), -1, 1)
    keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**{**TINY, "precision": precision}, discriminator_norm=norm,
                                   discriminator_batches="joint_constant_statistics"))
    real, fakes = (tf.cast(faces, gan.discriminator.compute_dtype) for faces in (real, fakes))
    results, weights = [], gan.discriminator.get_weights()  # spectral norm's power iteration moves `u` a call
    for halves in (False, True):
        gan.discriminator.set_weights(weights)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([real, fakes])
            if halves:  # the generator's step: the halves apart where the network allows it
                logits = gan._generator_logits(real, fakes)
            else:
                with networks.constant_statistics(gan.discriminator):
                    logits = gan.discriminate(real, fakes)[1]
            loss = tf.reduce_sum(tf.cast(logits, tf.float32) * tf.linspace(-1.0, 1.0, TINY["batch_size"])[:, None])
        to_real = tape.gradient(loss, real)
        results.append(dict(logits=tf.cast(logits, tf.float32).numpy(),
                            to_fakes=tf.cast(tape.gradient(loss, fakes), tf.float32).numpy(),
                            to_real=0.0 if to_real is None else float(tf.reduce_max(tf.abs(to_real)))))
    joint, halves = results
    norms = [layer for layer in gan.discriminator.layers if isinstance(layer, networks.FusedBatchNormalization)]
    assert all(np.array_equal(layer.moving_mean.numpy(), np.zeros(layer.moving_mean.shape))
               and np.array_equal(layer.moving_variance.numpy(), np.ones(layer.moving_variance.shape))
               for layer in norms)  # neither way moves the moving statistics from their start
    tolerance = 1e-5 if precision == "float32" else 0.03
    np.testing.assert_allclose(halves["logits"], joint["logits"], atol=tolerance * np.abs(joint["logits"]).max())
    np.testing.assert_allclose(halves["to_fakes"], joint["to_fakes"],
                               atol=tolerance * np.abs(joint["to_fakes"]).max())
    assert np.abs(joint["to_fakes"]).max() > 0 and halves["to_real"] == joint["to_real"] == 0
    if norm == "spectral":
        with pytest.raises(ValueError, match="not a chain of the layers"):
            networks.held_statistics_logits(gan.discriminator, real, fakes)


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_statistics_recorded_by_the_joint_call_give_the_generators_step_the_halves_logits(precision):
    """joint_reused_statistics: the real half's moments recorded in a training call of the joint batch (the
    discriminator's step), given to held_statistics_logits in place of the real faces, give the fakes the logits
    and gradients that taking the real half through again gives, while the weights are the same; the recording
    changes nothing the call computes, and a missing layer's statistics are refused by name."""
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 9), -1, 1)
    fakes = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (2, 9), -1, 1)
    keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**{**TINY, "precision": precision}, discriminator_batches="joint_reused_statistics"))
    real, fakes = (tf.cast(faces, gan.discriminator.compute_dtype) for faces in (real, fakes))
    plain = gan.discriminate(real, fakes)
    with networks.recording_statistics(gan.discriminator, TINY["batch_size"]) as recorded:
        recording = gan.discriminate(real, fakes)
    for before, after in zip(plain, recording):
        np.testing.assert_array_equal(tf.cast(after, tf.float32).numpy(), tf.cast(before, tf.float32).numpy())
    norms = [layer.name for layer in gan.discriminator.layers if isinstance(layer, networks.FusedBatchNormalization)]
    assert norms and sorted(recorded) == sorted(norms)
    results = []
    for statistics in (None, recorded):
        with tf.GradientTape() as tape:
            tape.watch(fakes)
            logits = tf.cast(networks.held_statistics_logits(gan.discriminator, real, fakes, statistics), tf.float32)
            loss = tf.reduce_sum(logits * tf.linspace(-1.0, 1.0, TINY["batch_size"])[:, None])
        results.append((logits.numpy(), tf.cast(tape.gradient(loss, fakes), tf.float32).numpy()))
    (logits, to_fakes), (reused_logits, reused_to_fakes) = results
    tolerance = 1e-5 if precision == "float32" else 0.03
    np.testing.assert_allclose(reused_logits, logits, atol=tolerance * np.abs(logits).max())
    np.testing.assert_allclose(reused_to_fakes, to_fakes, atol=tolerance * np.abs(to_fakes).max())
    assert np.abs(to_fakes).max() > 0
    with pytest.raises(ValueError, match=f"No recorded statistics of {norms[0]}"):
        networks.held_statistics_logits(gan.discriminator, None, fakes, {})


def test_the_training_step_of_reused_statistics_runs_fewer_convolutions_than_measuring_them_again():
    """The whole traced train_step: with the statistics recorded by the discriminator's step, the generator's step
    takes no real face through the discriminator, so fewer convolutions run than with joint_constant_statistics
    (the halves apart), whatever the precision."""
    faces = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 10), -1, 1)
    forward = {}
    for batches in ("joint_constant_statistics", "joint_reused_statistics"):
        keras.utils.set_random_seed(2)
        gan = DCGAN.from_config(Config(**TINY, discriminator_batches=batches))
        graph = tf.function(gan.train_step).get_concrete_function(faces).graph
        forward[batches] = sum(op.type in ("Conv2D", "MatMul") for op in graph.get_operations())
    assert forward["joint_reused_statistics"] < forward["joint_constant_statistics"]


@pytest.mark.parametrize("batches", ["joint_constant_statistics", "joint_reused_statistics"])
def test_the_halves_leave_the_real_faces_out_of_the_backward_pass(batches):
    """In the traced generator step, no convolution, forward or backward, runs on the joint batch (16 faces):
    the discriminator takes the halves apart, and only the fakes' half is differentiated; with the real half's
    statistics reused from the discriminator's step, no convolution runs on the real faces at all."""
    keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**TINY, discriminator_batches=batches))
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 8), -1, 1)
    z = tf.random.stateless_normal((TINY["batch_size"], TINY["z_dim"]), (2, 8))
    with networks.recording_statistics(gan.discriminator, TINY["batch_size"]) as recorded:
        gan.discriminate(real, real)  # the discriminator's step records the real half's statistics
    reused = recorded if batches == "joint_reused_statistics" else None

    @tf.function
    def generator_gradient(z):
        with tf.GradientTape() as tape:
            loss = networks.generator_loss(gan._generator_logits(real, gan.generator(z, training=True), reused))
        return tape.gradient(loss, gan.generator.trainable_variables)

    graph = generator_gradient.get_concrete_function(z).graph
    convolutions = [op for op in graph.get_operations()
                    if op.type in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")]
    maps = dict(Conv2D=lambda op: [op.inputs[0], op.outputs[0]],  # (the others: filters, sizes)
                Conv2DBackpropInput=lambda op: [op.inputs[2], op.outputs[0]],
                Conv2DBackpropFilter=lambda op: [op.inputs[0], op.inputs[2]])
    sizes = {int(tensor.shape[0]) for op in convolutions for tensor in maps[op.type](op)}
    assert any(op.type == "Conv2DBackpropFilter" for op in convolutions)  # the generator's own weights' gradient
    assert sizes == {TINY["batch_size"]}  # never the joint batch of both halves, forward or backward
    read = [internal.consumers() for external, internal in graph.captures if external is real]
    assert bool(read and read[0]) == (batches == "joint_constant_statistics")  # reused: the real faces not read


def test_constant_statistics_last_only_while_open_and_leave_the_moving_statistics_alone():
    keras.utils.set_random_seed(2)
    gan = DCGAN.from_config(Config(**TINY))
    norms = [layer for layer in gan.discriminator.layers if isinstance(layer, networks.FusedBatchNormalization)]
    faces = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (4, 5), -1, 1)
    moving = [layer.moving_mean.numpy() for layer in norms]
    with pytest.raises(RuntimeError):
        with networks.constant_statistics(gan.discriminator):
            assert norms and all(layer.constant_statistics for layer in norms)
            gan.discriminator(faces, training=True)
            raise RuntimeError("closed on an error too")
    assert not any(layer.constant_statistics for layer in norms)
    assert all(np.array_equal(before, layer.moving_mean.numpy()) for before, layer in zip(moving, norms))
    gan.discriminator(faces, training=True)
    assert not all(np.array_equal(before, layer.moving_mean.numpy()) for before, layer in zip(moving, norms))


class CountingGenerator(keras.Model):
    """The generator, counting the forward passes made in training mode (train_step run eagerly)."""

    def __init__(self, generator):
        super().__init__()
        self.inner, self.training_calls = generator, 0

    def call(self, z, training=False):
        self.training_calls += bool(training)
        return self.inner(z, training=training)


def test_reused_fakes_run_the_generator_once_per_step_and_train_it_through_the_updated_discriminator():
    calls, matches = {}, {}
    for reuse in (False, True):
        keras.utils.set_random_seed(3)
        config = Config(**{**PLAIN_RECIPE, **TINY, "reuse_fakes": reuse})
        gan = DCGAN.from_config(config)
        generator_before = networks.build_generator(config.networks)
        generator_before.set_weights(gan.generator.get_weights())
        gan.generator = CountingGenerator(gan.generator)
        real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (4, 2), -1, 1)
        # the step's first z: the fakes the discriminator learns from
        z = gan.step_noise().normal((TINY["batch_size"], TINY["z_dim"]))
        logs = gan.train_step(real)
        calls[reuse] = gan.generator.training_calls
        # the generator's loss on those same fakes, judged by the discriminator after its update
        same_fakes = networks.generator_loss(gan.discriminator(generator_before(z, training=True), training=True))
        matches[reuse] = float(logs["generator_loss"]) == pytest.approx(float(same_fakes), rel=1e-5)
    assert calls == {False: 2, True: 1}
    assert matches == {False: False, True: True}  # two forwards draw new fakes for the generator's step


def trained_weights(steps=3, **settings):
    keras.utils.set_random_seed(5)  # the same initial weights for every call
    gan = DCGAN.from_config(Config(**{**TINY, **settings}))
    real = tf.random.stateless_uniform((steps, TINY["batch_size"], 64, 64, 3), (1, 2), -1, 1)
    for step in range(steps):
        gan.train_step(real[step])
    return gan, [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]


@pytest.mark.slow
def test_the_plain_recipe_is_reproducible_by_settings_alone_and_the_average_does_not_change_training():
    config = Config(**PLAIN_RECIPE)
    settings = config.settings()
    assert [settings[name] for name in ("ema_decay", "label_smoothing", "discriminator_norm", "flip_faces")] == \
        [0, 0, "batch", False]
    assert [settings[name] for name in ("generator_learning_rate", "discriminator_learning_rate", "beta_1")] == \
        [2e-4, 2e-4, 0.5]
    plain, plain_weights = trained_weights(**PLAIN_RECIPE)
    assert plain.ema_generator is None
    averaged, averaged_weights = trained_weights(**{**PLAIN_RECIPE, "ema_decay": 0.999})
    for a, b in zip(plain_weights, averaged_weights):  # so one run scores both generators (ablation.py)
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_batch_norm_momentum_changes_only_the_moving_statistics_not_training():
    slow, slow_weights = trained_weights(batchnorm_momentum=0.99)
    fast, fast_weights = trained_weights(batchnorm_momentum=0.9)
    for a, b in zip(slow_weights, fast_weights):
        np.testing.assert_array_equal(a, b)
    moving = "up1_bn"
    assert not np.allclose(slow.generator.get_layer(moving).moving_mean.numpy(),
                           fast.generator.get_layer(moving).moving_mean.numpy())


def test_one_sided_label_smoothing_targets_one_minus_the_smoothing_for_real_faces_only():
    real, fake = tf.constant([[2.0], [-1.0]]), tf.constant([[0.5], [-3.0]])
    sigmoid = lambda x: 1 / (1 + np.exp(-np.asarray(x)))  # noqa: E731
    expected = -np.mean(0.9 * np.log(sigmoid(real)) + 0.1 * np.log(1 - sigmoid(real))) \
        - np.mean(np.log(1 - sigmoid(fake)))
    assert float(networks.discriminator_loss(real, fake, label_smoothing=0.1)) == pytest.approx(expected, rel=1e-5)
    assert float(networks.discriminator_loss(real, fake, 0.1)) > float(networks.discriminator_loss(real, fake))


def test_spectral_norm_divides_each_kernel_by_its_largest_singular_value_and_replaces_batch_norm():
    config = Config(discriminator_norm="spectral", **TINY)
    discriminator = networks.build_discriminator(config.networks)
    assert not [layer for layer in discriminator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    layer = discriminator.get_layer("down3")
    for _ in range(300):  # power iterations, one per training call
        kernel = layer.normalized_kernel(training=True).numpy()
    largest = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert largest == pytest.approx(1.0, abs=1e-3)
    raw = layer.kernel.numpy()
    assert np.linalg.svd(raw.reshape(-1, raw.shape[-1]), compute_uv=False)[0] != pytest.approx(1.0, abs=0.05)
    # The gradient flows through σ: the output does not change when the kernel is scaled, so the gradient is
    # orthogonal to the kernel (keras.layers.SpectralNormalization, which overwrites the kernel, fails this).
    images = tf.random.uniform((4, 64, 64, 3), -1, 1)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(discriminator(images, training=False) ** 2)
    gradient = tape.gradient(total, layer.kernel).numpy()
    assert abs(np.sum(gradient * raw)) < 1e-4 * np.linalg.norm(gradient) * np.linalg.norm(raw)


def test_minibatch_stddev_gives_each_face_its_groups_spread_and_nothing_to_a_group_of_identical_faces():
    features = np.random.default_rng(0).normal(size=(8, 4, 4, 3)).astype("float32")
    features[1::2] = features[1]  # faces 1, 3, 5, 7: group 2 (face i is in group i mod 2) is one face four times
    out = networks.MinibatchStddev(4)(features).numpy()
    assert out.shape == (8, 4, 4, 4) and np.array_equal(out[..., :3], features)
    spread = np.sqrt(features.reshape(4, 2, 4, 4, 3).var(axis=0) + 1e-8).mean(axis=(1, 2, 3))
    assert np.allclose(out[0::2, ..., 3], spread[0], rtol=1e-5) and spread[0] > 0.5
    assert np.allclose(out[1::2, ..., 3], 1e-4, atol=1e-6)  # sqrt(0 + 1e-8): a collapsed group is told apart


def test_the_minibatch_stddev_discriminator_sees_its_batch_and_is_a_different_network():
    config = Config(**{**TINY, "minibatch_stddev": 2, "discriminator_batches": "separate"})
    discriminator = networks.build_discriminator(config.networks, seed=0)
    faces = tf.random.uniform((4, 64, 64, 3), -1, 1, seed=1)
    alone = discriminator(faces, training=False).numpy()
    others = discriminator(tf.concat([faces[:2], -faces[2:]], 0), training=False).numpy()
    assert alone.shape == (4, 1) and not np.allclose(alone[:2], others[:2])  # face 0's verdict depends on face 2
    plain = networks.build_discriminator(Config(**TINY).networks, seed=0)
    assert discriminator.get_layer("logit").kernel.shape[0] == plain.get_layer("logit").kernel.shape[0] + 4 * 4
    assert checkpoint_shape(config)["minibatch_stddev"] == 2 != checkpoint_shape(Config(**TINY))["minibatch_stddev"]


def test_flips_mirror_about_half_the_faces_and_leave_the_rest():
    images = tf.random.uniform((200, 8, 8, 3))
    flipped = augment.mirror_randomly(images, StepNoise(3, 0)).numpy()
    mirrored = [np.array_equal(after, before[:, ::-1]) for after, before in zip(flipped, images.numpy())]
    unchanged = [np.array_equal(after, before) for after, before in zip(flipped, images.numpy())]
    assert all(m != u for m, u in zip(mirrored, unchanged))  # each face is one or the other
    assert 70 < sum(mirrored) < 130


def test_translation_shifts_each_face_by_at_most_an_eighth_filling_the_border_with_zeros():
    images = tf.random.uniform((40, 16, 16, 3), 0.1, 1)  # no zeros of its own
    shifted = augment.translate_randomly(images, StepNoise(4, 0)).numpy()
    offsets = []
    for before, after in zip(images.numpy(), shifted):
        padded = np.pad(before, ((2, 2), (2, 2), (0, 0)))  # 16 / 8 = 2 pixels each way
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(after, padded[2 + dy:18 + dy, 2 + dx:18 + dx])]
        assert len(matches) == 1
        offsets.append(matches[0])
    assert len(set(offsets)) > 10  # each face its own shift


def test_cutout_zeroes_one_square_of_half_the_size_per_face_and_keeps_the_rest():
    images = tf.random.uniform((40, 16, 16, 3), 0.1, 1)
    cut = augment.cut_out_randomly(images, StepNoise(5, 0)).numpy()
    areas = []
    for before, after in zip(images.numpy(), cut):
        zero = np.all(after == 0, axis=-1)
        rows, columns = np.nonzero(zero.any(axis=1))[0], np.nonzero(zero.any(axis=0))[0]
        assert zero[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1].all()  # one rectangle
        assert len(rows) <= 8 and len(columns) <= 8
        np.testing.assert_array_equal(after[~zero], before[~zero])
        areas.append(zero.sum())
    assert max(areas) == 64 and min(areas) < 64  # clipped at the edges sometimes


def test_color_shifts_brightness_within_half_and_everything_stays_differentiable():
    flat = tf.ones((50, 8, 8, 3)) * tf.reshape(tf.linspace(-0.5, 0.5, 50), (50, 1, 1, 1))
    colored = augment.adjust_colors(flat, StepNoise(6, 0)).numpy()
    shifts = colored - flat.numpy()
    assert np.allclose(shifts, shifts[:, :1, :1, :1], atol=1e-6)  # a flat face stays flat: only brightness moves it
    assert -0.5 <= shifts.min() and shifts.max() < 0.5 and np.std(shifts[:, 0, 0, 0]) > 0.2
    images = tf.random.uniform((4, 16, 16, 3), -1, 1)
    noise = StepNoise(7, 0)
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment.diff_augment(images, list(DIFF_AUGMENTATIONS), noise) ** 2)
    gradient = tape.gradient(total, images).numpy()
    assert np.all(np.isfinite(gradient)) and np.mean(gradient != 0) > 0.5
    draws = noise.draws
    assert augment.diff_augment(images, [], noise) is images  # no policy: unchanged, and no draw made
    assert noise.draws == draws


class SeenByDiscriminator:
    """Stands in for a GAN's discriminator and keeps every batch the step shows it."""

    def __init__(self, network):
        self.network, self.seen = network, []

    def __call__(self, images, training=False):
        self.seen.append(np.asarray(images))
        return self.network(images, training=training)

    def __getattr__(self, name):
        return getattr(self.network, name)


def shifted(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """translate_randomly's output for one shift: pixel (r, c) from (r + rows, c + columns), 0 outside."""
    size = image.shape[0]
    out = np.zeros_like(image)
    source_rows = np.arange(size) + rows
    source_columns = np.arange(size) + columns
    keep_rows, keep_columns = (source_rows >= 0) & (source_rows < size), (source_columns >= 0) & (source_columns < size)
    out[np.ix_(keep_rows, keep_columns)] = image[np.ix_(source_rows[keep_rows], source_columns[keep_columns])]
    return out


@pytest.mark.parametrize("policy", [[], ["translation"]])
def test_the_discriminator_sees_the_real_faces_through_diff_augment_and_only_then(policy):
    gan = DCGAN.from_config(Config(**{**TINY, "diff_augment": policy, "flip_faces": False, "reuse_fakes": True}))
    gan.discriminator = SeenByDiscriminator(gan.discriminator)
    real = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (3, 4), -1, 1)
    gan.train_step(real)
    # the discriminator update's first call: the real faces (in a joint batch, its first half)
    seen_real = gan.discriminator.seen[0][:TINY["batch_size"]]
    if not policy:
        np.testing.assert_array_equal(seen_real, real.numpy())
        return
    shift = round(64 * 0.125)
    for index, image in enumerate(real.numpy()):  # each face is its real face moved by a whole-pixel shift
        matches = [(rows, columns) for rows in range(-shift, shift + 1) for columns in range(-shift, shift + 1)
                   if np.array_equal(seen_real[index], shifted(image, rows, columns))]
        assert matches, f"face {index} is not a translation of its real face"
    moved = [not np.array_equal(seen_real[index], image) for index, image in enumerate(real.numpy())]
    assert sum(moved) >= TINY["batch_size"] // 2  # 1 in 289 shifts is none: most faces moved


# --------------------------------------------------------------------------------------------- data on the device

def test_faces_kept_on_the_device_come_back_bit_exact_for_every_byte_pair():
    gan = DCGAN.from_config(Config(**TINY))
    every_pair = np.arange(2 ** 16, dtype=np.uint16).view(np.uint8)  # including float16 NaN and infinity patterns
    faces = np.resize(every_pair, (11, 64, 64, 3))  # 11 faces hold all 65,536 pairs
    assert gan.keep_on_device(faces)
    indices = tf.constant([10, 0, 3, 3, 7], tf.int64)
    expected = (faces[indices.numpy()].astype(np.float32) / 127.5) - 1.0
    np.testing.assert_allclose(gan.real_batch(indices).numpy(), expected, rtol=0, atol=1e-6)
    logs = gan.train_step(indices)  # a step on gathered faces
    assert np.isfinite(float(logs["discriminator_loss"]))
    with pytest.raises(ValueError, match=r"keep_on_device takes uint8 faces of shape \(n, 64, 64, 3\)"):
        gan.keep_on_device(faces.astype(np.float32))


def test_the_fused_adam_updates_weights_and_slots_as_keras_adam_does_in_one_op_per_weight():
    from facegan.gan import FusedAdam

    shapes = [(4, 4, 3, 8), (8,), (16, 1)]
    start = [tf.random.stateless_normal(shape, (7, index)) for index, shape in enumerate(shapes)]
    runs = {}
    for name, optimizer in (("fused", FusedAdam(2e-4, beta_1=0.5)), ("keras", keras.optimizers.Adam(2e-4, beta_1=0.5))):
        weights = [keras.Variable(value) for value in start]
        optimizer.build(weights)
        apply = tf.function(lambda gradients: optimizer.apply_gradients(zip(gradients, weights)))
        for step in range(5):
            apply([tf.random.stateless_normal(shape, (step, index)) for index, shape in enumerate(shapes)])
        runs[name] = (optimizer, [w.numpy() for w in weights], apply)
    for fused, plain in zip(runs["fused"][1], runs["keras"][1]):
        np.testing.assert_allclose(fused, plain, rtol=1e-6, atol=1e-9)
    fused_slots, plain_slots = runs["fused"][0].variables, runs["keras"][0].variables
    assert len(fused_slots) == len(plain_slots) > len(shapes)
    for fused, plain in zip(fused_slots, plain_slots):  # the same slots, so checkpoints of either load in the other
        np.testing.assert_allclose(fused.numpy(), plain.numpy(), rtol=1e-4, atol=1e-12)  # float32 order
    op_types = {op.type for op in runs["fused"][2].get_concrete_function(
        [tf.TensorSpec(shape) for shape in shapes]).graph.get_operations()}
    assert "ResourceApplyAdam" in op_types and "Sqrt" not in op_types


@pytest.mark.parametrize("norm", ["batch", "spectral"])
def test_the_runs_seed_fixes_the_initial_weights(norm):
    def initial(seed):
        keras.utils.set_random_seed(seed + 100)  # Keras's global random state, which the networks must not follow
        gan = DCGAN.from_config(Config(**{**TINY, "seed": seed, "discriminator_norm": norm}))
        return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]

    first, again, other = initial(0), initial(0), initial(1)
    assert len(first) == len(again) > 0
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    randomised = [(a, b) for a, b in zip(first, other) if a.std() > 0]  # the drawn weights (not zeros and ones)
    assert len(randomised) >= 8 and all(not np.array_equal(a, b) for a, b in randomised)
