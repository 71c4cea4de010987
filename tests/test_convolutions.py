"""facegan/convolutions.py: the matrix products compute what TensorFlow's convolution kernels compute (outputs,
gradients, second-order gradients), on the layers they are meant for and no others."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from facegan import convolutions, devices, networks
from facegan.config import Config
from facegan.gan import DCGAN
from conftest import TINY


def random(shape, seed):
    return tf.random.stateless_normal(shape, seed=(seed, 0))


def keras_twin(layer_class):
    """The Keras layer that `layer_class` computes as."""
    return keras.layers.Conv2D if layer_class is convolutions.Conv2D else keras.layers.Conv2DTranspose


def relative_error(expected, got) -> float:
    expected, got = (tf.cast(value, tf.float32).numpy() for value in (expected, got))
    return float(np.abs(expected - got).max() / np.abs(expected).max())


@pytest.mark.parametrize("kernel, height, width, channels, filters", [
    (4, 8, 8, 16, 32), (4, 16, 8, 3, 8), (6, 12, 12, 5, 7), (2, 4, 4, 8, 8)])
def test_the_filter_gradient_is_tensorflows_backprop_filter(kernel, height, width, channels, filters):
    inputs = random((3, height, width, channels), 1)
    output_gradient = random((3, height // 2, width // 2, filters), 2)
    expected = tf.raw_ops.Conv2DBackpropFilter(input=inputs, filter_sizes=[kernel, kernel, channels, filters],
                                               out_backprop=output_gradient, strides=[1, 2, 2, 1], padding="SAME")
    got = convolutions.filter_gradient(inputs, output_gradient, kernel)
    assert got.shape == (kernel, kernel, channels, filters)
    assert relative_error(expected, got) < 1e-5


def gradients(function, inputs, kernel):
    with tf.GradientTape() as tape:
        tape.watch([inputs, kernel])
        outputs = function(inputs, kernel)
        loss = tf.reduce_sum(tf.square(outputs) * random(outputs.shape, 3))
    return [outputs] + tape.gradient(loss, [inputs, kernel])


@pytest.mark.parametrize("kernel, height, width", [(4, 8, 8), (4, 4, 8), (6, 8, 8), (2, 4, 4)])
def test_the_matrix_product_convolutions_compute_tensorflows(kernel, height, width):
    inputs, weights = random((3, height, width, 5), 12), random((kernel, kernel, 5, 7), 13)
    expected = tf.nn.conv2d(inputs, weights, 2, "SAME")
    assert relative_error(expected, convolutions.convolution(inputs, weights, matmul=True)) < 1e-5
    small, weights = random((3, height // 2, width // 2, 7), 14), random((kernel, kernel, 5, 7), 15)  # (k, k, out, in)
    expected = tf.nn.conv2d_transpose(small, weights, (3, height, width, 5), 2, "SAME")
    got = convolutions.transposed_convolution(small, weights, matmul=True)
    assert got.shape == (3, height, width, 5)
    assert relative_error(expected, got) < 1e-5


@pytest.mark.parametrize("matmul", [False, True])
def test_both_convolutions_compute_tensorflows_outputs_and_gradients(matmul):
    inputs, kernel = random((4, 8, 8, 6), 4), random((4, 4, 6, 10), 5)
    expected = gradients(lambda x, k: tf.nn.conv2d(x, k, 2, "SAME"), inputs, kernel)
    got = gradients(lambda x, k: convolutions.strided_convolution(x, k, matmul), inputs, kernel)
    for want, value in zip(expected, got):
        assert relative_error(want, value) < 1e-5

    small, kernel = random((4, 4, 4, 10), 6), random((4, 4, 6, 10), 7)  # (k, k, out, in): 4×4×10 → 8×8×6
    expected = gradients(lambda x, k: tf.nn.conv2d_transpose(x, k, (4, 8, 8, 6), 2, "SAME"), small, kernel)
    got = gradients(lambda x, k: convolutions.strided_transposed_convolution(x, k, matmul), small, kernel)
    assert got[0].shape == (4, 8, 8, 6)
    for want, value in zip(expected, got):
        assert relative_error(want, value) < 1e-5


@pytest.mark.parametrize("matmul", [False, True])
def test_second_order_gradients_flow_through_the_matrix_products(matmul):
    """R1 differentiates the input gradient again, with respect to the weights."""
    inputs, kernel = random((2, 8, 8, 3), 8), random((4, 4, 3, 5), 9)

    def penalty_gradient(convolution):
        with tf.GradientTape() as outer:
            outer.watch(kernel)
            with tf.GradientTape() as inner:
                inner.watch(inputs)
                total = tf.reduce_sum(tf.square(convolution(inputs, kernel)))
            penalty = tf.reduce_sum(tf.square(inner.gradient(total, inputs)))
        return outer.gradient(penalty, kernel)

    expected = penalty_gradient(lambda x, k: tf.nn.conv2d(x, k, 2, "SAME"))
    got = penalty_gradient(lambda x, k: convolutions.strided_convolution(x, k, matmul))
    assert relative_error(expected, got) < 1e-5


def op_types(function, *specs):
    graph = tf.function(function).get_concrete_function(*specs).graph
    return [op.type for op in graph.get_operations()]


def forward_and_filter_gradient_ops(layer, input_shape):
    """The op types of `layer`'s output, and of its kernel's gradient, for an input of `input_shape`."""
    layer.build(input_shape)

    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32))
        return tape.gradient(loss, layer.kernel)

    spec = tf.TensorSpec(input_shape)
    return op_types(layer, spec), op_types(kernel_gradient, spec)


@pytest.mark.parametrize("layer_class", [convolutions.Conv2D, convolutions.Conv2DTranspose])
def test_the_layers_take_the_matmul_path_on_small_maps_only_and_only_when_asked(layer_class):
    def layer(matmul, kernel=4, strides=2):
        return layer_class(8, kernel, strides=strides, padding="same", matmul_small_maps=matmul)

    def shape(small_map):  # a convolution's input is twice its output; a transposed convolution's is its small map
        size = small_map if layer_class is convolutions.Conv2DTranspose else 2 * small_map
        return (2, size, size, 4)

    forward, backward = forward_and_filter_gradient_ops(layer(True), shape(4))
    assert "MatMul" in forward and not any(kind.startswith("Conv2D") for kind in forward)  # all matrix products
    assert "MatMul" in backward and "Conv2DBackpropFilter" not in backward
    forward, backward = forward_and_filter_gradient_ops(layer(True), shape(8))
    assert "MatMul" not in forward and "MatMul" in backward  # the filter gradient only
    for other in (layer(True), shape(16)), (layer(False), shape(4)), (layer(True, kernel=5), shape(4)), \
            (layer(True, strides=1), shape(4)):
        forward, backward = forward_and_filter_gradient_ops(*other)
        assert "MatMul" not in forward + backward


@pytest.mark.parametrize("layer_class, input_shape", [
    (convolutions.Conv2D, (3, 8, 8, 4)), (convolutions.Conv2DTranspose, (3, 4, 4, 4)),
    (convolutions.Conv2D, (3, 16, 16, 4)), (convolutions.Conv2DTranspose, (3, 8, 8, 4))])
def test_a_layer_on_the_matmul_path_computes_what_the_keras_layer_computes(layer_class, input_shape):
    keras_class = keras_twin(layer_class)
    ours = layer_class(6, 4, strides=2, padding="same", matmul_small_maps=True)
    theirs = keras_class(6, 4, strides=2, padding="same")
    ours.build(input_shape)
    theirs.build(input_shape)
    theirs.set_weights([random(weight.shape, index) for index, weight in enumerate(theirs.get_weights())])
    ours.set_weights(theirs.get_weights())
    x = random(input_shape, 10)
    results = []
    for layer in (theirs, ours):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x)
            loss = tf.reduce_sum(tf.square(outputs))
        results.append([outputs] + tape.gradient(loss, [x, layer.kernel, layer.bias]))
    for want, got in zip(*results):
        assert relative_error(want, got) < 1e-5


@pytest.mark.parametrize("layer_class, input_shape, matmul", [
    (convolutions.Conv2D, (50, 64, 64, 3), False), (convolutions.Conv2DTranspose, (50, 32, 32, 8), False),
    (convolutions.Conv2D, (50, 8, 8, 8), True), (convolutions.Conv2DTranspose, (50, 4, 4, 8), True)])
def test_the_bias_gradient_in_bfloat16_is_the_sum_of_the_output_gradient_rounded_once(layer_class, input_shape,
                                                                                       matmul):
    """Keras's BiasAdd sums its gradient in bfloat16 on CPUs: with it, three of these four cases came out 4–82% off
    (a trained network's first and last layers, 36% and 91%). The bias gradient is the output gradient summed over
    faces and pixels; in bfloat16 it may be off by the rounding of that sum, not more."""
    layer = layer_class(64 if layer_class is convolutions.Conv2D else 3, 4, strides=2, padding="same",
                        matmul_small_maps=matmul, dtype=keras.mixed_precision.DTypePolicy("mixed_bfloat16"))
    x = random(input_shape, 1)
    layer.build(input_shape)
    output_gradient = tf.cast(0.05 + random(layer.compute_output_shape(input_shape), 2), tf.bfloat16)
    with tf.GradientTape() as tape:
        outputs = layer(x)
        assert outputs.dtype == tf.bfloat16
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * tf.cast(output_gradient, tf.float32))
    got = tape.gradient(loss, layer.bias).numpy().astype(np.float64)
    want = tf.cast(output_gradient, tf.float64).numpy().sum(axis=(0, 1, 2))
    assert np.abs(got - want).max() <= 2 ** -7 * np.abs(want).max()
    keras_class = keras_twin(layer_class)
    theirs = keras_class(layer.filters, 4, strides=2, padding="same", dtype=layer.dtype_policy)
    theirs.build(input_shape)
    theirs.set_weights(layer.get_weights())
    np.testing.assert_allclose(tf.cast(theirs(x), tf.float32), tf.cast(outputs, tf.float32), rtol=2 ** -7, atol=2 ** -7)


def matmul(choice, policy):
    config = Config(**dict(TINY, small_map_convolutions=choice))
    return networks.matmul_small_maps(config.networks, keras.mixed_precision.DTypePolicy(policy))


def test_auto_takes_the_matmul_path_for_bfloat16_on_cpus_only(monkeypatch):
    monkeypatch.setattr(devices, "has_gpu", lambda: False)
    assert matmul("auto", "mixed_bfloat16")
    assert not matmul("auto", "float32") and not matmul("auto", "mixed_float16")
    assert matmul("matmul", "float32")
    assert not matmul("framework", "mixed_bfloat16")
    monkeypatch.setattr(devices, "has_gpu", lambda: True)  # a GPU keeps cuDNN's kernels
    assert not matmul("auto", "mixed_bfloat16")
    assert matmul("matmul", "mixed_bfloat16")


def test_the_networks_small_layers_take_the_matmul_path_and_the_large_ones_keras():
    config = Config(**dict(TINY, small_map_convolutions="matmul"))
    gan = DCGAN.from_config(config)
    convolution_layers = [layer for model in (gan.generator, gan.discriminator) for layer in model.layers
                          if isinstance(layer, (convolutions.Conv2D, convolutions.Conv2DTranspose))]
    assert len(convolution_layers) == 8 and all(layer.matmul_small_maps for layer in convolution_layers)
    plain = DCGAN.from_config(Config(**dict(TINY, small_map_convolutions="framework")))
    assert not any(getattr(layer, "matmul_small_maps", False) for layer in plain.discriminator.layers)
    # a 64×64 discriminator: 32 → 16 → 8 → 4; the filters of the last two (8×8 and 4×4 outputs) are matrix
    # products, and so is the last one's output
    kinds = op_types(lambda x: tf.gradients(tf.reduce_sum(gan.discriminator(x, training=True)),
                                            gan.discriminator.trainable_variables),
                     tf.TensorSpec((8, 64, 64, 3)))
    assert kinds.count("Conv2DBackpropFilter") == 2 and kinds.count("Conv2D") == 3 and kinds.count("MatMul") >= 3


def test_a_training_step_with_matrix_products_trains_as_the_convolution_kernels_do():
    """Float32, one real step of the DCGAN from the same seed: the weights agree to round-off."""
    results = []
    images = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (11, 0), -1, 1)
    for choice in ("framework", "matmul"):
        gan = DCGAN.from_config(Config(**dict(TINY, small_map_convolutions=choice)))
        gan.compile()
        weights = gan.generator.trainable_weights + gan.discriminator.trainable_weights
        before = [weight.numpy() for weight in weights]
        gan.train_step(images)
        results.append([weight.numpy() for weight in weights])
    moved = [np.abs(after - start).max() for after, start in zip(results[1], before)]
    assert max(moved) > 1e-5  # the step did train
    for want, got in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
