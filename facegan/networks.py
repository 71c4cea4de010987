"""The 64×64 face DCGAN's two networks, their losses, and their batch-norm statistics.

After Radford, Metz and Chintala (2016), "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", with the CelebA settings of carpedm20/DCGAN-tensorflow:

    generator      z(100) → 4×4×512 → 8×8×256 → 16×16×128 → 32×32×64 → 64×64×3 (tanh)
    discriminator  64×64×3 → 32×32×64 → 16×16×128 → 8×8×256 → 4×4×512 → 1 logit

Transposed convolutions with batch norm and ReLU in the generator; strided convolutions with LeakyReLU 0.2 in
the discriminator, batch norm on every layer but the first; weights from N(0, 0.02); the non-saturating loss.
Both builders take the network settings (config.Networks) and a seed for the initial weights (gan.py derives it
from the run's seed, so a run's seed fixes where it starts).
"""

import contextlib
import itertools
import math
import threading
import weakref
from typing import Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf
from tensorflow.python.eager import record  # how tf.custom_gradient puts an op on the tapes

from facegan import convolutions, devices
from facegan.config import Networks


def compute_precision(networks: Networks) -> str:
    """The Keras dtype policy the networks compute in: networks.precision, "auto" resolved on this machine."""
    return devices.resolve_precision(networks.precision)[0]


def matmul_small_maps(networks: Networks, policy) -> bool:
    """Whether the convolutions on small maps compute by matrix products (facegan/convolutions.py):
    networks.small_map_convolutions, where "auto" means in bfloat16 on a CPU, the only case measured faster."""
    if networks.small_map_convolutions == "auto":
        return policy.compute_dtype == "bfloat16" and not devices.has_gpu()
    return networks.small_map_convolutions == "matmul"


class Initializers:
    """N(mean, stddev) initializers, each seeded by `seed` and its place in the network (seed None: Keras's global
    random state, as keras.utils.set_random_seed sets it)."""

    def __init__(self, seed=None):
        self.seeds = itertools.count(1000 * seed) if seed is not None else None

    def __call__(self, mean: float = 0.0, stddev: float = 0.02):
        return keras.initializers.RandomNormal(mean, stddev, seed=next(self.seeds) if self.seeds else None)


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization (same weights, same checkpoints, same results) computed by TensorFlow's fused
    kernel, FusedBatchNormV3 (oneDNN's on CPUs, cuDNN's on GPUs). Keras 3 normalises with separate mean, variance,
    subtract and multiply passes over each activation, in float32 even under a mixed policy: on the Zen 4 machine
    those passes took a sixth of a training step (docs/speed.md). The moving variance is updated with the batch's
    population variance, as Keras does (the kernel returns the Bessel-corrected one). Under a tf.distribute strategy
    of several replicas a synchronized layer takes the statistics of the whole global batch (Keras's own path, an
    all-reduce per layer): the fused kernel sees one replica's share only."""

    @property
    def constant_statistics(self) -> bool:
        """Whether this thread is inside constant_statistics(model) of this layer's model."""
        return id(self) in getattr(_CONSTANT_STATISTICS, "layers", ())

    def across_replicas(self) -> bool:
        context = tf.distribute.get_replica_context()
        return self.synchronized and context is not None and context.num_replicas_in_sync > 1

    def call(self, inputs, training=None, mask=None):
        recording = getattr(_RECORDED_STATISTICS, "layers", {}).get(id(self))
        if training and self.trainable and recording is not None:
            count, recorded = recording  # the moments of the batch's first `count` faces, for a later step
            recorded[self.name] = self.moments(tf.stop_gradient(inputs[:count]))
        if training and self.trainable and self.constant_statistics:
            return self.normalise_by_held_statistics([inputs])[0]
        if (mask is not None or self.renorm or inputs.shape.rank != 4 or self.axis not in (-1, 3)
                or (training and self.across_replicas())):
            return super().call(inputs, training=training, mask=mask)
        scale, offset = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        if training and self.trainable:
            outputs, mean, sample_variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.zeros_like(scale), variance=tf.zeros_like(scale),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = sample_variance * (count - 1.0) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, data_format="NHWC",
                is_training=False)
        return tf.cast(outputs, self.compute_dtype)

    def moments(self, part) -> Tuple:
        """(values per feature, mean, mean square) of a batch of features, in float32: on NHWC maps FusedBatchNormV3's
        moments (training mode)."""
        count = tf.cast(tf.size(part) // tf.shape(part)[self.axis], tf.float32)
        rank = part.shape.rank
        if rank == 4 and self.axis in (-1, 3):
            ones = tf.ones_like(self.gamma, tf.float32)
            _, mean, sample_variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=part, scale=ones, offset=tf.zeros_like(ones), mean=tf.zeros_like(ones), variance=tf.zeros_like(ones),
                epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
            return count, mean, sample_variance * (count - 1.0) / count + tf.square(mean)
        values = tf.cast(part, tf.float32)
        axes = [axis for axis in range(rank) if axis != self.axis % rank]
        return count, tf.reduce_mean(values, axes), tf.reduce_mean(tf.square(values), axes)

    def normalise_by_held_statistics(self, parts: Sequence, recorded: Sequence[Tuple] = ()) -> list:
        """Each of `parts` (batches of one kind of feature) normalised by the mean and variance of all of them
        together, as one batch would be (under a synchronized strategy of several replicas, of every replica's
        parts), taken as constants: no gradient flows through them, and the moving statistics stay as they were.
        `recorded`: the moments (self.moments) of batches measured earlier, counted in as parts not given. On NHWC
        maps the moments and the normalising are TensorFlow's fused kernel's (FusedBatchNormV3 in training mode for
        each part's moments, in inference mode to normalise; its gradient reaches each input through its own value
        only)."""
        scale, offset = tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32)
        fused = parts[0].shape.rank == 4 and self.axis in (-1, 3)
        counts, means, mean_squares = zip(*([self.moments(part) for part in parts] + list(recorded)))
        total = tf.add_n(counts)
        mean = tf.add_n([count * value for count, value in zip(counts, means)]) / total
        mean_square = tf.add_n([count * value for count, value in zip(counts, mean_squares)]) / total
        if self.across_replicas():  # every replica holds an equal share of the global batch
            mean, mean_square = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.MEAN,
                                                                               [mean, mean_square])
        mean = tf.stop_gradient(mean)
        variance = tf.stop_gradient(tf.maximum(mean_square - tf.square(mean), 0.0))
        if fused:
            return [tf.cast(tf.raw_ops.FusedBatchNormV3(
                x=part, scale=scale, offset=offset, mean=mean, variance=variance, epsilon=self.epsilon,
                data_format="NHWC", is_training=False)[0], self.compute_dtype) for part in parts]
        return [tf.cast(tf.nn.batch_normalization(tf.cast(part, tf.float32), mean, variance, offset, scale,
                                                  self.epsilon), self.compute_dtype) for part in parts]


def takes_halves_apart(discriminator: keras.Model) -> bool:
    """Whether held_statistics_logits can take this network's halves apart: a chain of the layers
    build_discriminator uses with batch norm (not spectral norm's, nor MinibatchStddev)."""
    layers = [layer for layer in discriminator.layers if not isinstance(layer, keras.layers.InputLayer)]
    return bool(layers) and layers[0].input is discriminator.inputs[0] and all(
        layer.input is before.output for before, layer in zip(layers, layers[1:])) and all(
        type(layer) in _HALF_BY_HALF for layer in layers)


def held_statistics_logits(discriminator: keras.Model, real_inputs, fake_inputs,
                           real_statistics: Optional[Dict[str, Tuple]] = None):
    """The discriminator's logits of the fakes in training mode, in a joint batch with the real faces whose batch
    norms normalise by the joint batch's statistics held constant: what discriminator(concat([real, fakes])) gives
    inside constant_statistics(discriminator), the fakes' half. But the two halves go through each layer
    separately, meeting only in batch norm's statistics, so the real half (to which no gradient flows) has no
    backward pass, and is not taken past the last batch norm: the generator's step of
    discriminator_batches="joint_constant_statistics" without the backward pass of half its batch. With
    `real_statistics` (recording_statistics's, by layer name) the real half is not taken through at all: its
    moments are those recorded (discriminator_batches="joint_reused_statistics"), and real_inputs is not read. Only
    for a network that takes_halves_apart."""
    if not takes_halves_apart(discriminator):
        raise ValueError(f"{discriminator.name} is not a chain of the layers held_statistics_logits takes half by "
                         "half: call it on the joint batch inside constant_statistics(discriminator) instead")
    layers = [layer for layer in discriminator.layers if not isinstance(layer, keras.layers.InputLayer)]
    norms = [index for index, layer in enumerate(layers) if isinstance(layer, FusedBatchNormalization)]
    if real_statistics is not None:
        missing = [layers[index].name for index in norms if layers[index].name not in real_statistics]
        if missing:
            raise ValueError(f"No recorded statistics of {', '.join(missing)}: record them with "
                             "recording_statistics(discriminator, …) around a training call of the joint batch")
        fake = fake_inputs
        for layer in layers:
            fake = (layer.normalise_by_held_statistics([fake], [real_statistics[layer.name]])[0]
                    if isinstance(layer, FusedBatchNormalization) else layer(fake, training=True))
        return fake
    real, fake = tf.stop_gradient(real_inputs), tf.cast(fake_inputs, real_inputs.dtype)
    for index, layer in enumerate(layers):
        if isinstance(layer, FusedBatchNormalization):
            real, fake = layer.normalise_by_held_statistics([real, fake])
        else:
            if norms and index < norms[-1]:
                real = layer(real, training=True)
            fake = layer(fake, training=True)
    return fake


# The layers (by id) recording the statistics of their batch's real half, per thread (as _CONSTANT_STATISTICS)
_RECORDED_STATISTICS = threading.local()


@contextlib.contextmanager
def recording_statistics(model: keras.Model, count):
    """Inside, each batch-norm layer of `model` called in training mode records the moments of the first `count`
    faces of its batch (a joint batch's real half), held constant, into the dict yielded: layer name →
    (values per feature, mean, mean square), for held_statistics_logits's real_statistics. The discriminator's step
    of discriminator_batches="joint_reused_statistics" records them, so that the generator's step need not take
    the real faces through the discriminator again; the layers compute as they would without it. Read when a
    call is traced, as constant_statistics."""
    recorded: Dict[str, Tuple] = {}
    before = getattr(_RECORDED_STATISTICS, "layers", {})
    _RECORDED_STATISTICS.layers = {**before, **{id(layer): (count, recorded) for layer in model.layers
                                                if isinstance(layer, FusedBatchNormalization)}}
    try:
        yield recorded
    finally:
        _RECORDED_STATISTICS.layers = before


# The layers (by id) whose statistics are held constant, per thread: tf.distribute's mirrored strategy traces each
# replica's step in a thread of its own, and each must trace the same calls (the same collectives, in one order).
_CONSTANT_STATISTICS = threading.local()


@contextlib.contextmanager
def constant_statistics(model: keras.Model):
    """Inside, every batch-norm layer of `model` normalises a training batch by that batch's statistics held
    constant: the outputs are the same, but a gradient reaches each input through its own value only, never through
    the mean and variance it shares with the rest of the batch. Read when a call is traced, so open it around the
    call inside a tf.function (each thread holds its own). The generator's step of
    discriminator_batches="joint_constant_statistics" computes this (held_statistics_logits, which takes the real
    and fake halves apart): with live statistics the generator can move the real faces' normalised features by
    moving the shared statistics (a few extreme fakes widen the variance and draw every face toward the batch's
    mean)."""
    before = getattr(_CONSTANT_STATISTICS, "layers", frozenset())
    _CONSTANT_STATISTICS.layers = before | {id(layer) for layer in model.layers
                                            if isinstance(layer, FusedBatchNormalization)}
    try:
        yield
    finally:
        _CONSTANT_STATISTICS.layers = before


class LeakyReLU(keras.layers.LeakyReLU):
    """keras.layers.LeakyReLU (the same function and gradient; in 16-bit precision the fused op rounds once, after
    the bias and the activation, so results differ by rounding) whose gradient reads its output, not its input.
    TensorFlow's gradient of LeakyRelu reads the op's input, so the op before it has a second reader and oneDNN
    cannot fuse the activation into it: the discriminator's first layer then ran Conv2D + bias and LeakyRelu as
    two passes over its 32×32×64 maps (docs/speed.md). With a slope ≥ 0 the output has the input's sign, so
    LeakyReluGrad(gradient, output) is the same gradient. The op is put on the tapes by record.record_operation,
    as tf.custom_gradient does, but without custom_gradient's IdentityN, which reads the input too. Second-order
    gradients (R1) differentiate LeakyReluGrad as usual (tests/test_gan.py)."""

    def call(self, inputs):
        slope = self.negative_slope
        with record.stop_recording():
            outputs = tf.nn.leaky_relu(inputs, slope)

        def gradient(output_gradient):
            with tf.name_scope("leaky_relu_gradient"):
                return [tf.raw_ops.LeakyReluGrad(gradients=output_gradient, features=outputs, alpha=slope)]

        record.record_operation("LeakyRelu", [outputs], [inputs], gradient)
        return outputs


def _batch_norm(networks: Networks, policy, name: str, initializers: Initializers):
    """Synchronized: on several GPUs or machines the statistics are the global batch's, so a step there is the step
    of one device at the same batch_size (tests/test_distributed.py), not a step of smaller batches."""
    return FusedBatchNormalization(momentum=networks.batchnorm_momentum, epsilon=1e-5, dtype=policy,
                                   synchronized=True, name=name,
                                   gamma_initializer=initializers(1.0, 0.02))


def number_of_upsamplings(image_size: int) -> int:
    return int(math.log2(image_size // 4))


def build_generator(networks: Networks, seed=None) -> keras.Model:
    """z → image in [-1, 1]; the output is float32 whatever the precision. `seed`: the initial weights'."""
    initializers = Initializers(seed)
    policy = keras.mixed_precision.DTypePolicy(compute_precision(networks))
    matmul = matmul_small_maps(networks, policy)
    layers = number_of_upsamplings(networks.image_size)
    width = networks.generator_width * 2 ** (layers - 1)
    z = keras.Input((networks.z_dim,), name="z")
    x = keras.layers.Dense(4 * 4 * width, use_bias=False, kernel_initializer=initializers(), dtype=policy,
                           name="project")(z)
    x = keras.layers.Reshape((4, 4, width), dtype=policy)(x)
    x = _batch_norm(networks, policy, "project_bn", initializers)(x)
    x = keras.layers.ReLU(dtype=policy)(x)
    for index in range(1, layers):
        width //= 2
        x = convolutions.Conv2DTranspose(width, networks.kernel_size, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=initializers(), dtype=policy, name=f"up{index}",
                                         matmul_small_maps=matmul)(x)
        x = _batch_norm(networks, policy, f"up{index}_bn", initializers)(x)
        x = keras.layers.ReLU(dtype=policy)(x)
    x = convolutions.Conv2DTranspose(3, networks.kernel_size, strides=2, padding="same",
                                     kernel_initializer=initializers(), dtype=policy, name=f"up{layers}",
                                     matmul_small_maps=matmul)(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(z, image, name="generator")


class SpectralNorm:
    """Spectral normalisation as in Miyato et al. (2018) and torch.nn.utils.spectral_norm: the layer computes with
    kernel / σ, where σ, the kernel's largest singular value, is estimated by one power iteration per training
    call; the gradient flows through σ, and the power-iteration vector `u` is a non-trainable weight (saved in
    checkpoints). keras.layers.SpectralNormalization instead overwrites the kernel with kernel / σ on each call."""

    def build(self, input_shape):
        super().build(input_shape)
        initializer = getattr(self, "u_initializer", None) or keras.initializers.RandomNormal()
        self.u = self.add_weight(shape=(1, self.kernel.shape[-1]), initializer=initializer,
                                 trainable=False, autocast=False, name="u", aggregation="mean")

    def normalized_kernel(self, training):
        kernel = tf.cast(self.kernel, tf.float32)
        matrix = tf.reshape(kernel, (-1, kernel.shape[-1]))
        v = tf.math.l2_normalize(tf.matmul(self.u, matrix, transpose_b=True))
        u = tf.math.l2_normalize(tf.matmul(v, matrix))
        u, v = tf.stop_gradient(u), tf.stop_gradient(v)
        sigma = tf.reduce_sum(tf.matmul(v, matrix) * u)
        if training:
            self.u.assign(u)
        return tf.cast(kernel / sigma, self.compute_dtype)


class SpectralConv2D(SpectralNorm, convolutions.Conv2D):
    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        return outputs + self.bias if self.use_bias else outputs


class SpectralDense(SpectralNorm, keras.layers.Dense):
    def call(self, inputs, training=False):
        outputs = tf.matmul(inputs, self.normalized_kernel(training))
        return outputs + self.bias if self.use_bias else outputs


def _with_u(layer, initializers: Initializers):
    """A spectrally normalised layer's power-iteration vector drawn from the network's seed too."""
    if isinstance(layer, SpectralNorm):
        layer.u_initializer = initializers(0.0, 1.0)
    return layer


class MinibatchStddev(keras.layers.Layer):
    """Karras et al. (2018), Progressive GAN, as StyleGAN2 has it: each face gains one feature map, the standard
    deviation of every feature across its group of `group_size` faces (consecutive in the batch), averaged. A
    discriminator that sees this can tell a batch of too-alike fakes from real faces, so a generator that drops
    kinds of faces is told. Computed in float32; the batch must be a whole number of groups."""

    def __init__(self, group_size: int, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        shape = tf.shape(x)
        values = tf.cast(x, tf.float32)
        grouped = tf.reshape(values, tf.concat([[self.group_size, -1], shape[1:]], 0))  # face i: group i mod n
        deviation = tf.sqrt(tf.math.reduce_variance(grouped, axis=0) + 1e-8)  # (groups, h, w, c)
        per_group = tf.reduce_mean(deviation, axis=[1, 2, 3])
        feature = tf.tile(per_group, [self.group_size])[:, None, None, None] * tf.ones_like(values[..., :1])
        return tf.concat([x, tf.cast(feature, x.dtype)], axis=-1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


# The layers held_statistics_logits takes half by half: each maps a face to its output alone, but for batch norm,
# whose statistics it joins (not MinibatchStddev, whose groups span the batch, nor spectral norm's layers, which
# would take two power iterations a call).
_HALF_BY_HALF = (convolutions.Conv2D, FusedBatchNormalization, LeakyReLU, keras.layers.Flatten, keras.layers.Dense)


def build_discriminator(networks: Networks, seed=None) -> keras.Model:
    """image in [-1, 1] → one real/fake logit (float32). With discriminator_norm="spectral" every layer is
    spectrally normalised and there is no batch norm (the SN-GAN discriminator). With minibatch_stddev, the last
    feature maps gain the group's standard deviation (MinibatchStddev) before the logit. `seed`: the initial
    weights'."""
    initializers = Initializers(seed)
    policy = keras.mixed_precision.DTypePolicy(compute_precision(networks))
    spectral = networks.discriminator_norm == "spectral"
    convolution, dense = (SpectralConv2D, SpectralDense) if spectral else (convolutions.Conv2D, keras.layers.Dense)
    layers = number_of_upsamplings(networks.image_size)
    image = keras.Input((networks.image_size, networks.image_size, 3), name="image")
    x = image
    for index in range(layers):
        batch_norm = index > 0 and not spectral
        x = _with_u(convolution(networks.discriminator_width * 2 ** index, networks.kernel_size, strides=2,
                                padding="same", use_bias=not batch_norm, kernel_initializer=initializers(),
                                dtype=policy, name=f"down{index + 1}",
                                matmul_small_maps=matmul_small_maps(networks, policy)), initializers)(x)
        if batch_norm:
            x = _batch_norm(networks, policy, f"down{index + 1}_bn", initializers)(x)
        x = LeakyReLU(0.2, dtype=policy)(x)
    if networks.minibatch_stddev:
        x = MinibatchStddev(networks.minibatch_stddev, dtype=policy, name="minibatch_stddev")(x)
    x = keras.layers.Flatten(dtype=policy)(x)
    logit = _with_u(dense(1, kernel_initializer=initializers(), dtype="float32", name="logit"), initializers)(x)
    return keras.Model(image, logit, name="discriminator")


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0):
    """Cross-entropy with target 1 for real faces (1 - label_smoothing: one-sided smoothing) and 0 for fakes."""
    real = tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(real_logits), 1.0 - label_smoothing), real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def generator_loss(fake_logits):
    """The non-saturating loss: -log D(G(z))."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits))


_statistics_probes = weakref.WeakKeyDictionary()


def _statistics_probe(generator: keras.Model):
    """The generator's batch-norm layers and one compiled function: z → each layer's input mean and variance in
    training mode (built once per generator)."""
    if generator not in _statistics_probes:
        norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
        probe = keras.Model(generator.inputs, [layer.input for layer in norms])

        def moments(z):
            activations = [tf.cast(activation, tf.float32) for activation in probe(z, training=True)]
            return [tf.nn.moments(activation, list(range(activation.shape.rank - 1))) for activation in activations]

        _statistics_probes[generator] = norms, tf.function(moments, reduce_retracing=True)
    return _statistics_probes[generator]


def recompute_batch_norm_statistics(generator: keras.Model, batch_size: int = 100, batches: int = 10,
                                    seed: int = 0):
    """Set each batch-norm layer's moving mean and variance to what it sees in training mode, averaged over
    `batches` batches of random z ("precise BN", Wu and Johnson 2021). Done when a run starts, so that faces drawn
    in inference mode are right from step 1; callable after training for exact statistics."""
    norms, moments = _statistics_probe(generator)
    noise = tf.random.Generator.from_seed(seed)
    means = [0.0] * len(norms)
    variances = [0.0] * len(norms)
    for _ in range(batches):
        for index, (mean, variance) in enumerate(moments(noise.normal((batch_size, generator.input_shape[-1])))):
            means[index] += mean / batches
            variances[index] += variance / batches
    for layer, mean, variance in zip(norms, means, variances):
        layer.moving_mean.assign(mean)
        layer.moving_variance.assign(variance)
