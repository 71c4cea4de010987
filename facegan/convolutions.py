"""The networks' strided convolutions, computed on their small maps as matrix products where that is faster.

A convolution's gradient with respect to its filter sums, over every face and every output pixel, the input patch
under the kernel times the output's gradient there. oneDNN computes it with a convolution kernel that divides the
work by output pixels; on the DCGAN's small maps (8×8 and 4×4, where the filters are largest) that kernel ran at
140–370 GFLOP/s in bfloat16 on a 2-core Xeon with AMX, an eighth to a third of the CPU's matrix-product rate
(docs/speed.md). Gathering the patches first (a reshape and eight slices for a 4×4 kernel, no gather op) turns it
into one matrix product, (faces × output pixels, kernel² × input channels)ᵀ · (faces × output pixels, output
channels), which oneDNN runs at the matrix-product rate. On the 4×4 maps the forward pass and the gradient to the
input are matrix products too: a convolution is its patches times the kernel, and a transposed convolution each
input pixel times the kernel, its contributions summed where they overlap (fold, the inverse of patches). On
larger maps those stay TensorFlow's convolutions, which were faster there.

A layer built with matmul_small_maps=True takes the matrix-product filter gradient when its smaller map is at
most MATMUL_FILTER_SIZE pixels wide, and computes wholly by matrix products when it is at most MATMUL_SIZE wide;
the networks' setting `small_map_convolutions` chooses which layers are built so (networks.matmul_small_maps:
"auto" is bfloat16 on a CPU, where it was measured faster, with AMX and with AVX-512 BF16 alone; in float32 it
gained nothing, and GPUs' kernels are not the ones measured). Only stride-2 convolutions with "same" padding, an even
kernel and even input sizes have the fast path (the DCGAN's); any other layer computes as Keras's. The results
are Keras's up to round-off (tests/test_convolutions.py compares them in float32).

In 16-bit precision both layers add their bias with AddV2, not Keras's BiasAdd (add_bias()): on CPUs BiasAdd's
gradient, and oneDNN's convolution gradient that computes it fused, sum the gradient over every face and pixel in
bfloat16: on a trained network the discriminator's first layer's and the generator's last layer's bias gradients
came out 36% and 91% off float32's (docs/speed.md, on a 2-core Xeon with AMX). AddV2's gradient, tf.reduce_sum,
is off by the bfloat16 rounding of the result, and was no slower.
"""

import keras
import tensorflow as tf

MATMUL_FILTER_SIZE = 8  # the filter gradient is a matrix product where the smaller map is at most this wide
MATMUL_SIZE = 4  # and the whole layer where it is at most this wide (measured: 16→8 gains only in the filter)
SUMMED_BIAS_DTYPES = ("bfloat16", "float16")  # where the bias is added by add_bias(), not BiasAdd


def add_bias(outputs, bias):
    """outputs + bias along the last axis by AddV2, whose gradient to the bias is tf.reduce_sum (accurate in 16-bit
    precision), not BiasAdd, whose CPU gradient sums in the compute dtype (the module's docstring)."""
    return tf.add(outputs, tf.cast(bias, outputs.dtype))


def _adds_bias_itself(layer) -> bool:
    """Whether `layer` adds its bias by add_bias(): with a bias, channels last, in 16-bit precision."""
    return layer.use_bias and layer.data_format == "channels_last" and layer.compute_dtype in SUMMED_BIAS_DTYPES


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


def fold(contributions, kernel_size: int, channels: int):
    """(faces, h, w, kernel² × channels) → (faces, 2h, 2w, channels): what each pixel of a map of h × w gives the
    output of a stride-2 "same" transposed convolution, summed where the kernel's footprints overlap. The
    contributions are ordered (row // 2, column // 2, row % 2, column % 2, channel) of the kernel, so that each of
    the (kernel/2)² shifts is one depth_to_space away from its place."""
    pad, half = kernel_size // 2 - 1, kernel_size // 2
    _, height, width, _ = contributions.shape
    shifts = tf.reshape(contributions, [-1, height, width, half, half, 4 * channels])
    grid = tf.add_n([tf.pad(shifts[:, :, :, row, column, :], [[0, 0], [row, pad - row], [column, pad - column], [0, 0]])
                     for row in range(half) for column in range(half)])
    return tf.nn.depth_to_space(grid, 2)[:, pad:pad + 2 * height, pad:pad + 2 * width, :]


def convolution(inputs, kernel, matmul: bool):
    """The stride-2 "same" convolution with a (k, k, in, out) kernel: TensorFlow's, or patches × kernel."""
    if not matmul:
        return tf.nn.conv2d(inputs, kernel, 2, "SAME")
    size, _, channels, filters = kernel.shape
    with tf.name_scope("matmul_convolution"):
        product = tf.matmul(tf.reshape(patches(inputs, size), [-1, size * size * channels]),
                            tf.reshape(kernel, [-1, filters]))
        return tf.reshape(product, [-1, inputs.shape[1] // 2, inputs.shape[2] // 2, filters])


def transposed_convolution(inputs, kernel, matmul: bool):
    """The stride-2 "same" transposed convolution with a (k, k, out, in) kernel, to twice the input's size:
    TensorFlow's, or each input pixel × kernel, folded."""
    size, _, filters, channels = kernel.shape
    if not matmul:
        shape = tf.shape(inputs)
        return tf.nn.conv2d_transpose(inputs, kernel, tf.stack([shape[0], 2 * shape[1], 2 * shape[2], filters]), 2,
                                      "SAME")
    half = size // 2
    with tf.name_scope("matmul_convolution"):
        by_shift = tf.transpose(tf.reshape(kernel, [half, 2, half, 2, filters, channels]), [5, 0, 2, 1, 3, 4])
        product = tf.matmul(tf.reshape(inputs, [-1, channels]),
                            tf.reshape(by_shift, [channels, size * size * filters]))
        return fold(tf.reshape(product, [-1, inputs.shape[1], inputs.shape[2], size * size * filters]), size,
                    filters)


def filter_gradient(inputs, output_gradient, kernel_size: int):
    """The gradient of a stride-2 "same" convolution of `inputs` with respect to its (kernel, kernel, in, out)
    filter, given the gradient at its output: TensorFlow's Conv2DBackpropFilter, as one matrix product."""
    channels, filters = inputs.shape[-1], output_gradient.shape[-1]
    columns = tf.reshape(patches(inputs, kernel_size), [-1, kernel_size * kernel_size * channels])
    product = tf.matmul(columns, tf.reshape(output_gradient, [-1, filters]), transpose_a=True)
    return tf.reshape(product, [kernel_size, kernel_size, channels, filters])


def _strided(inputs, kernel, matmul: bool, transposed: bool):
    """A stride-2 "same" convolution (transposed: to twice the input's size) whose filter gradient is
    filter_gradient(), and whose output and input gradient are matrix products with `matmul`. The input gradient
    of either kind is the other kind with the same kernel, applied to the output's gradient."""
    forward, backward = (transposed_convolution, convolution) if transposed else (convolution, transposed_convolution)

    @tf.custom_gradient
    def convolve(inputs, kernel):
        def gradient(output_gradient):
            with tf.name_scope("input_gradient"):
                input_gradient = backward(output_gradient, kernel, matmul)
            with tf.name_scope("filter_gradient"):  # the larger map first, as a convolution's input
                larger, smaller = (output_gradient, inputs) if transposed else (inputs, output_gradient)
                return input_gradient, filter_gradient(larger, smaller, kernel.shape[0])

        return forward(inputs, kernel, matmul), gradient

    return convolve(inputs, kernel)


def strided_convolution(inputs, kernel, matmul: bool = False):
    """tf.nn.conv2d(inputs, kernel, 2, "SAME") whose filter gradient is filter_gradient(); with `matmul`, its
    output and its input gradient are matrix products too."""
    return _strided(inputs, kernel, matmul, transposed=False)


def strided_transposed_convolution(inputs, kernel, matmul: bool = False):
    """The stride-2 "same" transposed convolution (kernel: (k, k, out, in)) to twice the input's size, whose filter
    gradient is filter_gradient() with the roles of input and output exchanged; with `matmul`, its output and its
    input gradient are matrix products too."""
    return _strided(inputs, kernel, matmul, transposed=True)


def _small_map_size(layer, inputs, transposed: bool):
    """The width of the smaller of `layer`'s two maps (a Conv2D's output, a Conv2DTranspose's input) when the
    layer takes the matrix-product filter gradient for `inputs`, else None: only with matmul_small_maps, for
    stride-2 "same" convolutions with an even square kernel, channels last, and known even input sizes, on maps at
    most MATMUL_FILTER_SIZE wide."""
    sizes = inputs.shape[1:3]
    if not layer.matmul_small_maps or any(size is None or size % 2 for size in sizes):
        return None
    kernel = layer.kernel_size[0]
    if not (tuple(layer.strides) == (2, 2) and layer.padding == "same" and layer.kernel_size == (kernel, kernel)
            and kernel % 2 == 0 and tuple(layer.dilation_rate) == (1, 1) and layer.data_format == "channels_last"
            and (not transposed or layer.output_padding is None)):
        return None
    smaller = max(sizes) if transposed else max(sizes) // 2
    return smaller if smaller <= MATMUL_FILTER_SIZE else None


class Conv2D(keras.layers.Conv2D):
    """keras.layers.Conv2D (same weights, same checkpoints), computed by matrix products on small maps when
    `matmul_small_maps`; in 16-bit precision its bias is added by add_bias()."""

    def __init__(self, *args, matmul_small_maps: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_small_maps = matmul_small_maps

    def call(self, inputs):
        if not _adds_bias_itself(self):
            return super().call(inputs)
        outputs = add_bias(self.convolution_op(inputs, self.kernel), self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def convolution_op(self, inputs, kernel):
        output_size = _small_map_size(self, inputs, transposed=False)
        if output_size is not None:
            return strided_convolution(inputs, tf.cast(kernel, self.compute_dtype), output_size <= MATMUL_SIZE)
        return super().convolution_op(inputs, kernel)

    def get_config(self):
        return {**super().get_config(), "matmul_small_maps": self.matmul_small_maps}


class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """keras.layers.Conv2DTranspose (same weights, same checkpoints), computed by matrix products on small maps
    when `matmul_small_maps`; in 16-bit precision its bias is added by add_bias()."""

    def __init__(self, *args, matmul_small_maps: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_small_maps = matmul_small_maps

    def call(self, inputs):
        input_size = _small_map_size(self, inputs, transposed=True)
        if input_size is None and not _adds_bias_itself(self):
            return super().call(inputs)
        if input_size is not None:
            outputs = strided_transposed_convolution(inputs, tf.cast(self.kernel, self.compute_dtype),
                                                     input_size <= MATMUL_SIZE)
        else:
            outputs = keras.ops.conv_transpose(inputs, self.kernel, strides=list(self.strides), padding=self.padding,
                                               output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                               data_format=self.data_format)
        if self.use_bias:
            outputs = add_bias(outputs, self.bias)
        return self.activation(outputs) if self.activation is not None else outputs

    def get_config(self):
        return {**super().get_config(), "matmul_small_maps": self.matmul_small_maps}
