"""The 64×64 face DCGAN: its settings, the two networks and one training step.

After Radford, Metz and Chintala (2016), "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks", with the CelebA settings of carpedm20/DCGAN-tensorflow:

    generator      z(100) → 4×4×512 → 8×8×256 → 16×16×128 → 32×32×64 → 64×64×3 (tanh)
    discriminator  64×64×3 → 32×32×64 → 16×16×128 → 8×8×256 → 4×4×512 → 1 logit

Transposed convolutions with batch norm and ReLU in the generator; strided convolutions with LeakyReLU 0.2 in
the discriminator, batch norm on every layer but the first; weights from N(0, 0.02); the non-saturating loss;
Adam with learning rate 2e-4 and beta_1 0.5.
"""

import dataclasses
import json
import math
import textwrap
import weakref
from typing import List, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from facegan import devices
from celeba_utils import to_float

PRECISIONS = ("auto",) + devices.PRECISIONS
STRATEGIES = ("default", "mirrored", "multi_worker")
DISCRIMINATOR_NORMS = ("batch", "spectral")
DIFF_AUGMENTATIONS = ("color", "translation", "cutout")


def setting(default, help: str):
    """A Config field: its default and the one sentence that documents it everywhere (the notebook's parameters
    cell, docs/settings.md and the command lines' flags are made from it)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class Config:
    """Every setting of a training run, with its default and its help (settings_table() lists them)."""

    # data
    image_path: str = setting("img_align_celeba", "CelebA's folder of aligned faces, or img_align_celeba.zip "
                              "(img_align_celeba also finds the zip); any folder of photos works")
    crop_size: int = setting(108, "centre crop of the aligned 178×218 face before resizing (DCGAN-tensorflow's "
                             "CelebA convention), scaled for other image sizes")
    partition: Optional[str] = setting(None, '"train", "validation", "test" or None for all faces '
                                       "(needs CelebA's list_eval_partition.txt beside the folder)")
    attributes: Sequence[str] = setting((), 'e.g. ["Smiling", "-Eyeglasses"]: only faces with / without these '
                                        "(needs list_attr_celeba.txt beside the folder)")
    cache_dir: Optional[str] = setting(None, "where the decoded faces are cached (None: ~/.cache/dcgan-faces)")
    # networks (the fields in NETWORK_FIELDS shape the checkpoint)
    image_size: int = setting(64, "faces of image_size × image_size; any power of two of at least 8 (the networks "
                              "gain or lose layers)")
    z_dim: int = setting(100, "length of the latent vector z")
    generator_width: int = setting(64, "channels of the generator's last hidden layer (×8, ×4, ×2, ×1: "
                                   "512-256-128-64 at 64)")
    discriminator_width: int = setting(64, "channels of the discriminator's first layer (×1, ×2, ×4, ×8: "
                                       "64-128-256-512 at 64)")
    kernel_size: int = setting(4, "convolution kernel of both networks: 4 (Radford et al.'s code, "
                               "pytorch/examples: no uneven overlap) or 5 (DCGAN-tensorflow, the seed: 25/16 the work)")
    batchnorm_momentum: float = setting(0.9, "momentum of batch norm's moving statistics, used at generation time")
    ema_decay: float = setting(0.999, "grids, metrics and GIFs draw with an exponential moving average of the "
                               "generator's weights (0: off, the plain DCGAN recipe)")
    ema_statistics_batches: int = setting(10, "the average's batch-norm statistics are measured on this many "
                                          "batches of 100 of its own faces (0: copied from the trained generator)")
    precision: str = setting("auto", '"auto": mixed bfloat16 where the device runs it fast (CPUs with '
                             "amx_bf16 or avx512_bf16, GPUs of compute capability 8.0+), float32 elsewhere; or "
                             '"float32", "mixed_bfloat16", "mixed_float16" (loss scaling)')
    # devices
    strategy: str = setting("default", 'one device; "mirrored": every GPU of this machine; "multi_worker": '
                            "several machines (cluster from TF_CONFIG)")
    jit_compile: Optional[bool] = setting(None, "XLA; None: on for GPUs, off on CPUs (where it was measured "
                                          "slower)")
    steps_per_execution: int = setting(1, "training steps per call into TensorFlow (more: less Python overhead "
                                       "on fast GPUs)")
    resident_data: Optional[bool] = setting(None, "keep the faces on the training device and gather each batch "
                                            "there (None: on; False: stream batches from memory)")
    # optimisation
    steps: int = setting(20000, "train until this step (a resumed run continues toward it)")
    batch_size: int = setting(100, "faces per step (the seed's grid of 100 was one batch)")
    generator_learning_rate: float = setting(2e-4, "Adam's learning rate for the generator (Radford et al.)")
    discriminator_learning_rate: float = setting(2e-4, "Adam's learning rate for the discriminator (TTUR: 4e-4 "
                                                 "with 1e-4 for the generator)")
    beta_1: float = setting(0.5, "Adam's beta_1 for both networks")
    seed: int = setting(0, "the 100 grid vectors, the training noise and the data order")
    # training recipe (measured one by one in ablation.py; PLAIN_RECIPE gives the original DCGAN)
    label_smoothing: float = setting(0.0, "one-sided: the discriminator's target for real faces is 1 − this "
                                     "(ganhacks #6; 0.1 is usual)")
    discriminator_norm: str = setting("batch", '"batch", or "spectral": spectral normalisation on every '
                                      "discriminator layer instead of batch norm (Miyato et al. 2018)")
    flip_faces: bool = setting(False, "mirror each real face left-right with probability 1/2")
    diff_augment: Sequence[str] = setting(("translation", "cutout"), "DiffAugment (Zhao et al. 2020) of every face "
                                          'the discriminator sees: any of "color", "translation", "cutout" ([]: '
                                          'off); "color" measured worse on colour and layout (SWD)')
    reuse_fakes: bool = setting(True, "one generator forward per step: the generator step backpropagates "
                                "through the discriminator step's fakes, as pytorch/examples does (False: it "
                                "draws new z and runs the generator again, as the seed did)")
    # outputs
    checkpoint_dir: str = setting("my_net", "the run's folder: checkpoints, config.json, logs")
    sample_dir: str = setting("imgs", "sample grids examples-1.png, -101.png, -201.png, …")
    sample_every: int = setting(100, "a grid at step 1 and every this many steps after it")
    checkpoint_every: int = setting(500, "a checkpoint every this many steps, and whenever training stops")
    keep_checkpoints: int = setting(3, "the newest checkpoints kept")
    fresh: bool = setting(False, "True: move what checkpoint_dir and sample_dir hold into their archive/<time>/ "
                          "and start at step 0")
    # quality while training (metrics.py): 0 turns it off
    metrics_every: int = setting(0, "score the faces every this many steps (0: off)")
    metric_samples: int = setting(2048, "generated faces scored against as many training faces")
    metrics: Sequence[str] = setting(("swd",), 'any of "swd", "fid", "kid" (FID and KID: pip install -r '
                                     "requirements-metrics.txt)")
    best_metric: str = setting("swd", "the network scoring lowest on it is kept in checkpoint_dir/best-<metric>/")

    def __post_init__(self):
        self.attributes = list(self.attributes or [])
        self.metrics = list(self.metrics or [])
        self.diff_augment = [self.diff_augment] if isinstance(self.diff_augment, str) else list(self.diff_augment or [])
        positive = ("image_size", "z_dim", "generator_width", "discriminator_width", "kernel_size", "steps",
                    "batch_size", "sample_every", "checkpoint_every", "keep_checkpoints", "crop_size",
                    "steps_per_execution")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two of at least 8 (64 for faces), got {self.image_size}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.jit_compile not in (None, True, False):
            raise ValueError(f"jit_compile must be None (automatic), True or False, got {self.jit_compile!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("generator_learning_rate", "discriminator_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)!r}")
        if not 0 <= self.beta_1 < 1:
            raise ValueError(f"beta_1 must be in [0, 1), got {self.beta_1!r}")
        if isinstance(self.metrics_every, bool) or not isinstance(self.metrics_every, int) or self.metrics_every < 0:
            raise ValueError(f"metrics_every must be a whole number, 0 for off, got {self.metrics_every!r}")
        if isinstance(self.metric_samples, bool) or not isinstance(self.metric_samples, int) or \
                self.metric_samples < 2:
            raise ValueError(f"metric_samples must be a whole number of at least 2, got {self.metric_samples!r}")
        if self.best_metric not in self.metrics:
            raise ValueError(f"best_metric must be one of the metrics computed ({', '.join(self.metrics)}), "
                             f"got {self.best_metric!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no moving average), got {self.ema_decay!r}")
        if isinstance(self.ema_statistics_batches, bool) or not isinstance(self.ema_statistics_batches, int) or \
                self.ema_statistics_batches < 0:
            raise ValueError("ema_statistics_batches must be a whole number (0: the trained generator's statistics), "
                             f"got {self.ema_statistics_batches!r}")
        if not 0 <= self.batchnorm_momentum < 1:
            raise ValueError(f"batchnorm_momentum must be in [0, 1), got {self.batchnorm_momentum!r}")
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing must be in [0, 0.5) (0: off; 0.1 is usual), "
                             f"got {self.label_smoothing!r}")
        if self.discriminator_norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"discriminator_norm must be one of {', '.join(DISCRIMINATOR_NORMS)}, "
                             f"got {self.discriminator_norm!r}")
        if self.resident_data not in (None, True, False):
            raise ValueError(f"resident_data must be None (automatic), True or False, got {self.resident_data!r}")
        for name in ("flip_faces", "reuse_fakes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        unknown = [name for name in self.diff_augment if name not in DIFF_AUGMENTATIONS]
        if unknown or len(set(self.diff_augment)) != len(self.diff_augment):
            raise ValueError(f"diff_augment must list each of {', '.join(DIFF_AUGMENTATIONS)} at most once "
                             f"([] for none), got {self.diff_augment!r}")

    @property
    def uses_ema(self) -> bool:
        return self.ema_decay > 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})


# --------------------------------------------------------------------------------------------- settings, written out

def settings_table() -> str:
    """docs/settings.md: every setting, its default and its help, as a Markdown table."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for field in dataclasses.fields(Config):
        default, help_text = (text.replace("|", "\\|") for text in (_literal(field.default), field.metadata["help"]))
        lines.append(f"| `{field.name}` | `{default}` | {help_text} |")
    return "\n".join(lines) + "\n"


def _literal(value) -> str:
    """A default as Python source: lists for sequences, as a notebook or papermill writes them."""
    return repr(list(value)) if isinstance(value, (tuple, list)) else repr(value)


def parameters_cell(width: int = 116) -> List[str]:
    """The lines of gan_new.ipynb's parameters cell that set the Config fields: `name = default  # help`, the help
    wrapped onto comment lines below at `width` characters."""
    lines = []
    for field in dataclasses.fields(Config):
        first = f"{field.name} = {_literal(field.default)}  # "
        wrapped = textwrap.wrap(field.metadata["help"], width - len(first))
        rest = textwrap.wrap(" ".join(wrapped[1:]), width - 4) if len(wrapped) > 1 else []
        lines += [first + wrapped[0]] + [f"#   {line}" for line in rest]
    return lines


def _argument_type(field):
    """How a command line spells a setting: None, true/false, a comma-separated list, or the field's type."""
    def parse(text: str):
        if field.type in (Sequence[str],):
            return [part for part in text.split(",") if part]
        if text.lower() in ("none", "auto") and field.default is None:
            return None
        if field.type in (bool, Optional[bool]):
            if text.lower() not in ("true", "false", "on", "off", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "on", "1")
        base = {Optional[str]: str}.get(field.type, field.type)
        return base(text)
    parse.__name__ = field.name
    return parse


def add_arguments(parser, names: Optional[Sequence[str]] = None):
    """A --flag for each setting named (default: every setting), with its default and help from Config."""
    for field in dataclasses.fields(Config):
        if names is None or field.name in names:
            parser.add_argument(f"--{field.name.replace('_', '-')}", type=_argument_type(field),
                                default=field.default, help=f"{field.metadata['help']} (default: "
                                f"{_literal(field.default)})".replace("%", "%%"))


def config_from_arguments(arguments, **overrides) -> Config:
    """The Config of the parsed flags that add_arguments made, with overrides."""
    values = {field.name: getattr(arguments, field.name) for field in dataclasses.fields(Config)
              if hasattr(arguments, field.name)}
    return Config(**{**values, **overrides})


# The settings that decide the networks' variables: a checkpoint only restores into networks with the same ones.
NETWORK_FIELDS = ("image_size", "z_dim", "generator_width", "discriminator_width", "kernel_size",
                  "discriminator_norm", "uses_ema")

# The original recipe of Radford et al. and carpedm20/DCGAN-tensorflow, by settings alone: Config(**PLAIN_RECIPE).
PLAIN_RECIPE = dict(ema_decay=0.0, generator_learning_rate=2e-4, discriminator_learning_rate=2e-4, beta_1=0.5,
                    label_smoothing=0.0, discriminator_norm="batch", flip_faces=False, diff_augment=[],
                    kernel_size=5, reuse_fakes=False, precision="float32")


def compute_precision(config: "Config") -> str:
    """The Keras dtype policy the networks compute in: config.precision, "auto" resolved on this machine."""
    return devices.resolve_precision(config.precision)[0]


def _initializer():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """keras.layers.BatchNormalization (same weights, same checkpoints, same results) computed by TensorFlow's fused
    kernel, FusedBatchNormV3 (oneDNN's on CPUs, cuDNN's on GPUs). Keras 3 normalises with separate mean, variance,
    subtract and multiply passes over each activation, in float32 even under a mixed policy: on the Zen 4 machine
    those passes took a sixth of a training step (docs/speed.md). The moving variance is updated with the batch's
    population variance, as Keras does (the kernel returns the Bessel-corrected one)."""

    def call(self, inputs, training=None, mask=None):
        if mask is not None or self.renorm or inputs.shape.rank != 4 or self.axis not in (-1, 3):
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


def _batch_norm(config: Config, policy, name: str):
    return FusedBatchNormalization(momentum=config.batchnorm_momentum, epsilon=1e-5, dtype=policy,
                                   gamma_initializer=keras.initializers.RandomNormal(1.0, 0.02), name=name)


def number_of_upsamplings(image_size: int) -> int:
    return int(math.log2(image_size // 4))


def build_generator(config: Config) -> keras.Model:
    """z → image in [-1, 1]; the output is float32 whatever the precision."""
    policy = keras.mixed_precision.DTypePolicy(compute_precision(config))
    layers = number_of_upsamplings(config.image_size)
    width = config.generator_width * 2 ** (layers - 1)
    z = keras.Input((config.z_dim,), name="z")
    x = keras.layers.Dense(4 * 4 * width, use_bias=False, kernel_initializer=_initializer(), dtype=policy,
                           name="project")(z)
    x = keras.layers.Reshape((4, 4, width), dtype=policy)(x)
    x = _batch_norm(config, policy, "project_bn")(x)
    x = keras.layers.ReLU(dtype=policy)(x)
    for index in range(1, layers):
        width //= 2
        x = keras.layers.Conv2DTranspose(width, config.kernel_size, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=_initializer(), dtype=policy, name=f"up{index}")(x)
        x = _batch_norm(config, policy, f"up{index}_bn")(x)
        x = keras.layers.ReLU(dtype=policy)(x)
    x = keras.layers.Conv2DTranspose(3, config.kernel_size, strides=2, padding="same",
                                     kernel_initializer=_initializer(), dtype=policy, name=f"up{layers}")(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(z, image, name="generator")


class SpectralNorm:
    """Spectral normalisation as in Miyato et al. (2018) and torch.nn.utils.spectral_norm: the layer computes with
    kernel / σ, where σ, the kernel's largest singular value, is estimated by one power iteration per training
    call; the gradient flows through σ, and the power-iteration vector `u` is a non-trainable weight (saved in
    checkpoints). keras.layers.SpectralNormalization instead overwrites the kernel with kernel / σ on each call."""

    def build(self, input_shape):
        super().build(input_shape)
        self.u = self.add_weight(shape=(1, self.kernel.shape[-1]), initializer=keras.initializers.RandomNormal(),
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


class SpectralConv2D(SpectralNorm, keras.layers.Conv2D):
    def call(self, inputs, training=False):
        outputs = self.convolution_op(inputs, self.normalized_kernel(training))
        return outputs + self.bias if self.use_bias else outputs


class SpectralDense(SpectralNorm, keras.layers.Dense):
    def call(self, inputs, training=False):
        outputs = tf.matmul(inputs, self.normalized_kernel(training))
        return outputs + self.bias if self.use_bias else outputs


def build_discriminator(config: Config) -> keras.Model:
    """image in [-1, 1] → one real/fake logit (float32). With discriminator_norm="spectral" every layer is
    spectrally normalised and there is no batch norm (the SN-GAN discriminator)."""
    policy = keras.mixed_precision.DTypePolicy(compute_precision(config))
    spectral = config.discriminator_norm == "spectral"
    convolution, dense = (SpectralConv2D, SpectralDense) if spectral else (keras.layers.Conv2D, keras.layers.Dense)
    layers = number_of_upsamplings(config.image_size)
    image = keras.Input((config.image_size, config.image_size, 3), name="image")
    x = image
    for index in range(layers):
        batch_norm = index > 0 and not spectral
        x = convolution(config.discriminator_width * 2 ** index, config.kernel_size, strides=2, padding="same",
                        use_bias=not batch_norm, kernel_initializer=_initializer(), dtype=policy,
                        name=f"down{index + 1}")(x)
        if batch_norm:
            x = _batch_norm(config, policy, f"down{index + 1}_bn")(x)
        x = keras.layers.LeakyReLU(0.2, dtype=policy)(x)
    x = keras.layers.Flatten(dtype=policy)(x)
    logit = dense(1, kernel_initializer=_initializer(), dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name="discriminator")


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0):
    """Cross-entropy with target 1 for real faces (1 - label_smoothing: one-sided smoothing) and 0 for fakes."""
    real = tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(real_logits), 1.0 - label_smoothing), real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(tf.zeros_like(fake_logits), fake_logits)
    return tf.reduce_mean(real) + tf.reduce_mean(fake)


def generator_loss(fake_logits):
    """The non-saturating loss: -log D(G(z))."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake_logits), fake_logits))


def mirror_randomly(images, noise: tf.random.Generator):
    """Each image of a batch mirrored left-right with probability 1/2 (drawn from `noise`, so a resumed run
    continues the same draws)."""
    mirrored = noise.uniform((tf.shape(images)[0], 1, 1, 1)) < 0.5
    return tf.where(mirrored, tf.reverse(images, axis=[2]), images)


def adjust_colors(images, noise: tf.random.Generator):
    """DiffAugment's "color": a random brightness shift in [-0.5, 0.5), saturation scale in [0, 2) and contrast
    scale in [0.5, 1.5), each drawn for each image (on faces in [-1, 1])."""
    draws = noise.uniform((3, tf.shape(images)[0], 1, 1, 1))
    images = images + (draws[0] - 0.5)
    gray = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - gray) * (2 * draws[1]) + gray
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (draws[2] + 0.5) + mean


def translate_randomly(images, noise: tf.random.Generator, ratio: float = 0.125):
    """DiffAugment's "translation": each image shifted by up to `ratio` of its size in each direction (whole
    pixels), the uncovered border filled with 0 (mid-grey)."""
    size = images.shape[1]
    shift = int(size * ratio + 0.5)
    offsets = noise.uniform((tf.shape(images)[0], 2), -shift, shift + 1, dtype=tf.int32)
    positions = tf.range(size)[tf.newaxis, :]
    rows, columns = positions + offsets[:, :1], positions + offsets[:, 1:]  # where each output pixel comes from
    images = tf.gather(images, tf.clip_by_value(rows, 0, size - 1), axis=1, batch_dims=1)
    images = tf.gather(images, tf.clip_by_value(columns, 0, size - 1), axis=2, batch_dims=1)
    inside = ((rows >= 0) & (rows < size))[:, :, tf.newaxis] & ((columns >= 0) & (columns < size))[:, tf.newaxis, :]
    return images * tf.cast(inside, images.dtype)[..., tf.newaxis]


def cut_out_randomly(images, noise: tf.random.Generator, ratio: float = 0.5):
    """DiffAugment's "cutout": a square of `ratio` of the image's size, centred anywhere in it (clipped at the
    edges), set to 0 in each image (DeVries and Taylor 2017)."""
    size = images.shape[1]
    cut = int(size * ratio + 0.5)
    starts = noise.uniform((tf.shape(images)[0], 2), 0, size + (1 - cut % 2), dtype=tf.int32) - cut // 2
    positions = tf.range(size)[tf.newaxis, :]
    rows = (positions >= starts[:, :1]) & (positions < starts[:, :1] + cut)
    columns = (positions >= starts[:, 1:]) & (positions < starts[:, 1:] + cut)
    kept = ~(rows[:, :, tf.newaxis] & columns[:, tf.newaxis, :])
    return images * tf.cast(kept, images.dtype)[..., tf.newaxis]


AUGMENTATIONS = dict(color=adjust_colors, translation=translate_randomly, cutout=cut_out_randomly)


def diff_augment(images, policy: Sequence[str], noise: tf.random.Generator):
    """DiffAugment (Zhao, Liu, Lin, Zhu and Han 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"; after mit-han-lab/data-efficient-gans): the transformations of `policy`, in the order of
    DIFF_AUGMENTATIONS, applied to every face the discriminator sees, real or generated, in both networks' steps.
    The discriminator cannot memorise a small set of real faces, and, since every transformation is
    differentiable, the generator learns through it; the faces it draws are not augmented. Empty: unchanged."""
    for name in DIFF_AUGMENTATIONS:
        if name in policy:
            images = AUGMENTATIONS[name](images, noise)
    return images


def _adam(config: Config, learning_rate: float):
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=config.beta_1)
    if compute_precision(config) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


class DCGAN(keras.Model):
    """Both networks, their optimizers and the training step, driven by `fit()`.

    `step` counts finished training steps; `grid_latents` are the 100 fixed vectors of the sample grids;
    `noise` draws the z of each step. All three are saved in checkpoints, so a resumed run continues exactly.
    With ema_decay > 0, `ema_generator` holds an exponential moving average of the generator's weights
    (Yazıcı et al. 2019; Progressive GAN, StyleGAN): `sampling_generator` is the one that draws faces.
    """

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.generator = build_generator(config)
        self.discriminator = build_discriminator(config)
        self.generator_optimizer = _adam(config, config.generator_learning_rate)
        self.discriminator_optimizer = _adam(config, config.discriminator_learning_rate)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        grid_noise = tf.random.Generator.from_seed(config.seed + 1)
        self.grid_latents = tf.Variable(grid_noise.normal((100, config.z_dim)), trainable=False, name="grid_latents")
        self.noise = tf.random.Generator.from_seed(config.seed)
        self.resident_images = None  # see keep_on_device
        self.ema_generator = None
        if config.uses_ema:
            self.ema_generator = build_generator(config)
            self.ema_generator.set_weights(self.generator.get_weights())
        self.built = True  # both networks are built; fit() must not build the GAN by calling it on images

    @property
    def sampling_generator(self) -> keras.Model:
        """The generator that draws faces: the moving average when there is one, else the trained one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, z, training=False):
        return self.sampling_generator(z, training=training)

    def checkpoint(self) -> tf.train.Checkpoint:
        parts = dict(generator=self.generator, discriminator=self.discriminator,
                     generator_optimizer=self.generator_optimizer,
                     discriminator_optimizer=self.discriminator_optimizer,
                     step=self.step, grid_latents=self.grid_latents, noise=self.noise)
        if self.ema_generator is not None:
            parts["ema_generator"] = self.ema_generator
        return tf.train.Checkpoint(**parts)

    def ema_decay_at(self, step):
        """The decay of the update after `step` steps: ramped up early as tf.train.ExponentialMovingAverage does,
        min(ema_decay, (1 + step) / (10 + step)), so the average does not lag behind the first steps."""
        step = tf.cast(step, tf.float32)
        return tf.minimum(self.config.ema_decay, (1.0 + step) / (10.0 + step))

    def update_ema(self):
        """Move the average's weights toward the generator's. Its batch-norm statistics are not averaged: they
        belong to the weights that use them, and refresh_average_statistics() measures them before it draws."""
        decay = self.ema_decay_at(self.step)
        for average, weight in zip(self.ema_generator.trainable_weights, self.generator.trainable_weights):
            average.assign(decay * average + (1.0 - decay) * weight)

    def refresh_average_statistics(self, batches: Optional[int] = None):
        """Give the moving average batch-norm statistics of its own weights before it draws faces ("standing
        statistics", Brock et al. 2019, BigGAN; precise BN): measured in training mode on `batches` batches of 100
        of its own faces (default config.ema_statistics_batches), the same z each time. With 0, copy the trained
        generator's statistics instead, which belong to other weights: how the average drew before, and worse in
        every metric of the ablation (README). Training never reads them. Grids, metrics and load_gan call this."""
        if self.ema_generator is None:
            return
        batches = self.config.ema_statistics_batches if batches is None else batches
        if batches:
            recompute_batch_norm_statistics(self.ema_generator, batch_size=100, batches=batches, seed=self.config.seed)
            return
        for average, weight in zip(self.ema_generator.non_trainable_weights, self.generator.non_trainable_weights):
            average.assign(weight)

    def keep_on_device(self, images: np.ndarray) -> bool:
        """Copy the uint8 faces to the training device once (under a tf.distribute strategy, one copy on each),
        so that each step gathers its batch there and the input stream carries only indices
        (celeba_utils.make_dataset(indices_only=True)). Each pair of bytes is held as one float16, whose gather
        kernel every device has (GPUs have none for uint8), and is viewed as bytes again after the gather.
        Returns False, keeping nothing, when the device has no room for them."""
        size = self.config.image_size
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"keep_on_device takes uint8 faces of shape (n, {size}, {size}, 3), got "
                             f"{images.dtype} {images.shape}")
        try:
            pairs = tf.bitcast(tf.constant(images.reshape(len(images), -1, 2)), tf.float16)
            self.resident_images = tf.Variable(pairs, trainable=False, name="resident_images")
        except tf.errors.ResourceExhaustedError:
            self.resident_images = None
            return False
        return True

    def real_batch(self, data):
        """The step's real faces in [-1, 1]: the batch itself, or gathered on the device from its indices."""
        if self.resident_images is None:
            return data
        pairs = tf.gather(self.resident_images, data)
        size = self.config.image_size
        return to_float(tf.reshape(tf.bitcast(pairs, tf.uint8), (-1, size, size, 3)))

    def _discriminator_update(self, real_images, fake_images, replicas, augment):
        """One discriminator update on real faces and (already drawn) fakes; returns its loss."""
        with tf.GradientTape() as tape:
            real_logits = self.discriminator(augment(real_images), training=True)
            fake_logits = self.discriminator(augment(fake_images), training=True)
            d_loss = discriminator_loss(real_logits, fake_logits, self.config.label_smoothing)
            scaled = self.discriminator_optimizer.scale_loss(d_loss / replicas)
        gradients = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.discriminator_optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_variables))
        return d_loss

    def _generator_update(self, tape, scaled_loss):
        gradients = tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.generator_optimizer.apply_gradients(zip(gradients, self.generator.trainable_variables))

    def _train_networks(self, real_images, batch_size, replicas, augment):
        """The DCGAN step of Radford et al. and carpedm20/DCGAN-tensorflow: the discriminator learns from fakes of
        one z, then the generator from the updated discriminator's verdict on fakes of a new z (two generator
        forward passes per step)."""
        z = self.noise.normal((batch_size, self.config.z_dim))
        d_loss = self._discriminator_update(real_images, self.generator(z, training=True), replicas, augment)
        z = self.noise.normal((batch_size, self.config.z_dim))
        with tf.GradientTape() as tape:
            g_loss = generator_loss(self.discriminator(augment(self.generator(z, training=True)), training=True))
            scaled = self.generator_optimizer.scale_loss(g_loss / replicas)
        self._generator_update(tape, scaled)
        return d_loss, g_loss

    def _train_networks_reusing_fakes(self, real_images, batch_size, replicas, augment):
        """The step of pytorch/examples' DCGAN (reuse_fakes): one generator forward pass; the discriminator learns
        from those fakes (their gradient stopped), then the generator backpropagates through the updated
        discriminator's verdict on the same fakes. About 1/4 less work per step than _train_networks."""
        z = self.noise.normal((batch_size, self.config.z_dim))
        with tf.GradientTape() as tape:
            fake_images = self.generator(z, training=True)
            with tape.stop_recording():
                d_loss = self._discriminator_update(real_images, tf.stop_gradient(fake_images), replicas, augment)
            g_loss = generator_loss(self.discriminator(augment(fake_images), training=True))
            scaled = self.generator_optimizer.scale_loss(g_loss / replicas)
        self._generator_update(tape, scaled)
        return d_loss, g_loss

    def train_step(self, data):
        real_images = self.real_batch(data)
        # Under tf.distribute each replica sees its share of the batch; Keras sums the replicas' gradients, so
        # each replica's mean loss is divided by their number to give the gradient of the global mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(real_images)[0]
        if self.config.flip_faces:
            real_images = mirror_randomly(real_images, self.noise)
        augment = lambda images: diff_augment(images, self.config.diff_augment, self.noise)  # noqa: E731
        if self.config.reuse_fakes:
            d_loss, g_loss = self._train_networks_reusing_fakes(real_images, batch_size, replicas, augment)
        else:
            d_loss, g_loss = self._train_networks(real_images, batch_size, replicas, augment)
        if self.ema_generator is not None:
            self.update_ema()
        self.step.assign_add(1)
        return {"discriminator_loss": d_loss, "generator_loss": g_loss, "step": self.step}


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


_compiled_generators = weakref.WeakKeyDictionary()


def _inference_function(generator: keras.Model):
    """One compiled inference function per generator (traced once per batch size). The function holds the
    generator weakly, so the cache does not keep alive a generator nothing else uses."""
    if generator not in _compiled_generators:
        network = weakref.ref(generator)
        _compiled_generators[generator] = tf.function(lambda z: network()(z, training=False), reduce_retracing=True)
    return _compiled_generators[generator]


def generate(generator: keras.Model, z, batch_size: int = 100):
    """Images in [-1, 1] for latent vectors z, in inference mode (batch norm uses its moving statistics),
    so each image depends on its own z only, never on what else is in the batch."""
    z = tf.convert_to_tensor(z, tf.float32)
    if z.shape.rank != 2 or z.shape[1] != generator.input_shape[-1]:
        raise ValueError(f"z must have shape (n, {generator.input_shape[-1]}), got {tuple(z.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    infer = _inference_function(generator)
    parts = [infer(z[start:start + batch_size]) for start in range(0, z.shape[0], batch_size)]
    return tf.concat(parts, axis=0) if parts else tf.zeros((0,) + tuple(generator.output_shape[1:]))
