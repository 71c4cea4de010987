"""experiments/profile.py: a traced tiny step splits into the parts the table names (the recipe's scopes found by
name, the backward convolutions told from the forward ones), and the peer's ops fall in the same parts."""

import tempfile

import pytest
import tensorflow as tf

from experiments import profile
from facegan import convolutions
from facegan.config import Config
from facegan.gan import DCGAN
from conftest import TINY


def test_ops_are_put_in_parts_by_type_and_scope():
    part = profile.tensorflow_part
    assert part("discriminator_1/down2/convolution", "_MklNativeConv2D") == "convolution forward"
    assert part("generator_1/up1/conv_transpose", "_MklNativeConv2DBackpropInput") == "convolution forward"
    assert part("gradient_tape/discriminator_1/down2/convolution/Conv2DBackpropInput",
                "_MklNativeConv2DBackpropInput") == "convolution backward, data"
    assert part("gradient_tape/generator_1/up1/conv_transpose/Conv2D", "_MklNativeConv2D") == \
        "convolution backward, data"  # a transposed convolution's backward to its input is a Conv2D
    assert part("gradient_tape/discriminator_1/down1/BiasAdd", "_MklNativeConv2DBackpropFilterWithBias") == \
        "convolution backward, weights"
    assert part("adam_1/truediv_17", "RealDiv") == "optimiser updates"
    assert part("ResourceApplyAdam_3", "ResourceApplyAdam") == "optimiser updates"
    assert part("moving_average/mul_3", "Mul") == "moving average update"
    assert part("gradient_tape/diff_augment/GatherV2_1", "UnsortedSegmentSum") == \
        "DiffAugment and the real batch's gather"
    assert part("generator_1/up1_bn/FusedBatchNormV3", "_MklNativeFusedBatchNormV3") == "batch norm"
    assert part("discriminator_3/Cast", "Cast") == "casts and layout copies"
    assert part("gradient_tape/discriminator_1/leaky_re_lu/LeakyReluGrad", "LeakyReluGrad") == \
        "elementwise, activations and losses"
    peer = profile.torch_part
    assert peer("aten::mkldnn_convolution") == "convolution forward"
    assert peer("aten::convolution_backward") == "convolution backward (data and weights)"
    assert peer("aten::native_batch_norm_backward") == "batch norm"
    assert peer("aten::_foreach_addcdiv_") == "optimiser updates"
    assert peer("aten::copy_") == "casts and layout copies"
    assert peer("aten::leaky_relu_") == "elementwise, activations and losses"
    assert peer("ProfilerStep#3") == ""


def test_the_matrix_product_gradients_ops_count_as_the_backward_convolutions():
    """facegan/convolutions.py computes a small map's gradients in its own scopes: the filter's (patches and one
    MatMul) is "convolution backward, weights", the input's (a convolution, or a MatMul and its fold) "convolution
    backward, data", and a matrix-product forward pass "convolution forward"."""
    inputs, kernel = tf.zeros((2, 8, 8, 4)), tf.zeros((4, 4, 4, 6))

    def gradients(x, k):
        with tf.GradientTape() as tape:
            tape.watch([x, k])
            loss = tf.reduce_sum(convolutions.strided_convolution(x, k))
            loss += tf.reduce_sum(convolutions.strided_convolution(x, k, matmul=True))  # its scopes numbered _1
        return tape.gradient(loss, [x, k])

    graph = tf.function(gradients).get_concrete_function(inputs, kernel).graph
    ops = [(op.name, op.type) for op in graph.get_operations()]
    filter_ops = [(name, kind) for name, kind in ops if "filter_gradient" in name]
    assert any("filter_gradient_1/" in name for name, _ in filter_ops)
    assert {"MatMul", "ConcatV2"} <= {kind for _, kind in filter_ops}
    assert all(profile.tensorflow_part(name, kind) == "convolution backward, weights" for name, kind in filter_ops)
    input_convolutions = [(name, kind) for name, kind in ops if "input_gradient" in name
                          and (kind.startswith("Conv") or "matmul_convolution" in name)]
    assert {"Conv2DBackpropInput", "MatMul"} <= {kind for _, kind in input_convolutions}
    assert all(profile.tensorflow_part(name, "_MklNative" + kind) == "convolution backward, data"
               for name, kind in input_convolutions)
    forward = [(name, kind) for name, kind in ops if "matmul_convolution" in name and "gradient" not in name]
    assert "MatMul" in {kind for _, kind in forward}
    assert all(profile.tensorflow_part(name, kind) == "convolution forward" for name, kind in forward)


@pytest.mark.slow
def test_a_traced_tiny_step_splits_into_the_parts_of_its_recipe():
    gan = DCGAN.from_config(Config(**TINY))
    assert gan.ema_generator is not None and gan.recipe.diff_augment
    step = tf.function(gan.train_step)
    batch = tf.random.stateless_uniform((TINY["batch_size"], 64, 64, 3), (1, 2), -1, 1)
    float(step(batch)["generator_loss"])
    with tempfile.TemporaryDirectory() as folder:
        tf.profiler.experimental.start(folder)
        for _ in range(2):
            float(step(batch)["generator_loss"])
        tf.profiler.experimental.stop()
        parts, wall, busy = profile.read_trace(folder)
    for name in ("convolution forward", "convolution backward, data", "convolution backward, weights",
                 "batch norm", "optimiser updates", "moving average update",
                 "DiffAugment and the real batch's gather", "elementwise, activations and losses"):
        assert parts[name] > 0, name
    assert 0 < busy <= wall
    text = profile.table({"tiny": dict(step_ms=wall / 2, batch_size=TINY["batch_size"],
                                       parts_ms={name: value / 2 for name, value in parts.items() if value})})
    assert text.splitlines()[2].startswith("| convolution forward | ") and "the step's wall time" in text
