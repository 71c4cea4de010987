"""The networks' strided convolutions, with their filter gradient computed as one matrix product where that is
faster.

A convolution's gradient with respect to its filter sums, over every face and every output pixel, the input patch
under the kernel times the output's gradient there. oneDNN computes it with a convolution kernel that divides the
work by output pixels; on the DCGAN's small maps (8×8 and 4×4, where the filters are largest) that kernel ran at
150–380 GFLOP/s in bfloat16 on a 2-core Xeon with AMX, an eighth to a third of the CPU's matrix-product rate
(docs/speed.md). Gathering the patches first (a reshape and eight slices for a 4×4 kernel, no gather op) turns it
into one matrix product, (faces × output pixels, kernel² × input channels)ᵀ · (faces × output pixels, output
channels), which oneDNN runs at the matrix-product rate. The forward pass and the gradient to the input stay
TensorFlow's convolutions, so the outputs are the same ops as keras.layers.Conv2D's and Conv2DTranspose's; the
filter gradient differs by round-off.

A layer built with matmul_filter_gradient=True takes it on its input when its smaller map is at most
MAX_MATMUL_SIZE pixels wide; the networks' setting `filter_gradients` chooses which layers are built so
(networks.matmul_filter_gradients: "auto" is bfloat16 on a CPU, where it was measured faster, with AMX and with
AVX-512 BF16 alone; in float32 it was slower, and GPUs' kernels are not the ones measured). Only stride-2
convolutions with "same" padding, an even kernel and even input sizes have the fast path (the DCGAN's); any other
layer computes as Keras's.
"""

import keras
import tensorflow as tf

MAX_MATMUL_SIZE = 8  # the fast path's layers: their smaller map at most this wide (measured: 16→8 and 8→4 gain)


def patches(inputs, kernel_size: int):
    """(faces, h/2, w/2, kernel² × channels): the padded input under each output pixel of a stride-2 "same"
    convolution with an even kernel, channels ordered as the kernel's (row, column, channel). Made by viewing the
    padded input as (faces, rows/2, 2, columns/2, 2 × channels) and slicing it, so rows and columns are copied as
    whole runs."""
    pad, half = kernel_size // 2 - 1, kernel_size // 2
    _, height, width, channels = inputs.shape
    rows, columns = height // 2, width // 2
    padded = tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    pairs = tf.reshape(padded, [-1, rows + pad, 2, columns + pad, 2 * channels])
    return tf.concat([pairs[:, row:row + rows, phase, column:column + columns, :]
                      for row in range(half) for phase in range(2) for column in range(half)], axis=-1)


def filter_gradient(inputs, output_gradient, kernel_size: int):
    """The gradient of a stride-2 "same" convolution of `inputs` with respect to its (kernel, kernel, in, out)
    filter, given the gradient at its output: TensorFlow's Conv2DBackpropFilter, as one matrix product."""
    channels, filters = inputs.shape[-1], output_gradient.shape[-1]
    columns = tf.reshape(patches(inputs, kernel_size), [-1, kernel_size * kernel_size * channels])
    product = tf.matmul(columns, tf.reshape(output_gradient, [-1, filters]), transpose_a=True)
    return tf.reshape(product, [kernel_size, kernel_size, channels, filters])


@tf.custom_gradient
def strided_convolution(inputs, kernel):
    """tf.nn.conv2d(inputs, kernel, 2, "SAME") whose filter gradient is filter_gradient()."""
    outputs = tf.nn.conv2d(inputs, kernel, 2, "SAME")

    def gradient(output_gradient):
        with tf.name_scope("input_gradient"):
            input_gradient = tf.nn.conv2d_transpose(output_gradient, kernel, tf.shape(inputs), 2, "SAME")
        with tf.name_scope("filter_gradient"):
            return input_gradient, filter_gradient(inputs, output_gradient, kernel.shape[0])

    return outputs, gradient


@tf.custom_gradient
def strided_transposed_convolution(inputs, kernel):
    """The stride-2 "same" transposed convolution (kernel: (k, k, out, in)) to twice the input's size, whose filter
    gradient is filter_gradient() with the roles of input and output exchanged."""
    shape = tf.shape(inputs)
    output_shape = tf.stack([shape[0], 2 * shape[1], 2 * shape[2], kernel.shape[2]])
    outputs = tf.nn.conv2d_transpose(inputs, kernel, output_shape, 2, "SAME")

    def gradient(output_gradient):
        with tf.name_scope("input_gradient"):
            input_gradient = tf.nn.conv2d(output_gradient, kernel, 2, "SAME")
        with tf.name_scope("filter_gradient"):
            return input_gradient, filter_gradient(output_gradient, inputs, kernel.shape[0])

    return outputs, gradient


def _fast_path(layer, small_map_size: int) -> bool:
    """Whether `layer` (a Conv2D or Conv2DTranspose) takes the matrix-product filter gradient for this input."""
    kernel = layer.kernel_size[0]
    return (layer.matmul_filter_gradient and tuple(layer.strides) == (2, 2) and layer.padding == "same"
            and layer.kernel_size == (kernel, kernel) and kernel % 2 == 0 and tuple(layer.dilation_rate) == (1, 1)
            and layer.data_format == "channels_last" and small_map_size <= MAX_MATMUL_SIZE)


def _even(inputs) -> bool:
    """Whether the input's height and width are known and even."""
    return all(size is not None and size % 2 == 0 for size in inputs.shape[1:3])


class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D (same weights, same checkpoints), its filter gradient a matrix product on small maps
    when `matmul_filter_gradient`."""

    def __init__(self, *args, matmul_filter_gradient: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_filter_gradient = matmul_filter_gradient

    def convolution_op(self, inputs, kernel):
        if _even(inputs) and _fast_path(self, max(inputs.shape[1:3]) // 2):
            return strided_convolution(inputs, tf.cast(kernel, self.compute_dtype))
        return super().convolution_op(inputs, kernel)

    def get_config(self):
        return {**super().get_config(), "matmul_filter_gradient": self.matmul_filter_gradient}


class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose (same weights, same checkpoints), its filter gradient a matrix product on
    small maps when `matmul_filter_gradient`."""

    def __init__(self, *args, matmul_filter_gradient: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_filter_gradient = matmul_filter_gradient

    def call(self, inputs):
        if self.output_padding is None and _even(inputs) and _fast_path(self, max(inputs.shape[1:3])):
            outputs = strided_transposed_convolution(inputs, tf.cast(self.kernel, self.compute_dtype))
            if self.use_bias:
                outputs = outputs + tf.cast(self.bias, self.compute_dtype)
            return self.activation(outputs) if self.activation is not None else outputs
        return super().call(inputs)

    def get_config(self):
        return {**super().get_config(), "matmul_filter_gradient": self.matmul_filter_gradient}
