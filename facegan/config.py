"""Every setting of a training run, grouped by what it configures, each with its default and its help.

    config = Config(image_path="img_align_celeba", steps=5000)   # settings by name, as the notebook names them
    config.networks.z_dim, config.training.steps                  # read in their groups
    generator = networks.build_generator(config.networks)         # each part gets its own group only

The groups: Data (the faces), Networks (their shape and precision), Training (steps, batches, optimiser, seed),
Recipe (what the ablation measured, and the moving average), Devices, Outputs and Quality (metrics while
training). A setting's one-sentence help is written once, here; docs/settings.md, the notebook's parameters cell
and the command lines' flags are made from it (facegan/settings_text.py). A run's config.json holds the groups; a
config.json of an older version, one flat dictionary, still loads (runs.read_config).
"""

import dataclasses
import json
from typing import Dict, Iterator, Mapping, Optional, Sequence, Tuple

from facegan import devices

PRECISIONS = ("auto",) + devices.PRECISIONS
STRATEGIES = ("default", "mirrored", "multi_worker")
DISCRIMINATOR_NORMS = ("batch", "spectral")
SMALL_MAP_CONVOLUTIONS = ("auto", "framework", "matmul")
DIFF_AUGMENTATIONS = ("color", "translation", "cutout")
DISCRIMINATOR_BATCHES = ("separate", "joint", "joint_constant_statistics", "joint_reused_statistics")
EMA_RAMP = 0.05  # an average's half-life in images is at most this share of the images seen (StyleGAN2-ADA)
HIGHER_IS_BETTER = ("pr",)  # precision and recall: they cannot choose the best network by its lowest value


def setting(default, help: str):
    """A settings field: its default and the one sentence that documents it everywhere (the notebook's parameters
    cell, docs/settings.md and the command lines' flags are made from it)."""
    return dataclasses.field(default=default, metadata={"help": help})


def _check_whole(group, *names: str, minimum: int = 1):
    for name in names:
        value = getattr(group, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be a whole number of at least {minimum}, got {value!r}")


@dataclasses.dataclass
class Data:
    """Where the faces come from and how they are cut."""

    image_path: str = setting("img_align_celeba", "CelebA's folder of aligned faces, or img_align_celeba.zip "
                              "(img_align_celeba also finds the zip); any folder of photos works")
    crop_size: int = setting(108, "centre crop of the aligned 178×218 face before resizing (DCGAN-tensorflow's "
                             "CelebA convention), scaled for other image sizes")
    align_faces: bool = setting(False, "find the face in each photo and align it as CelebA's are (OpenCV), for a "
                                "folder of your own photos; photos with no face or several are skipped, counted")
    partition: Optional[str] = setting(None, '"train", "validation", "test" or None for all faces '
                                       "(needs CelebA's list_eval_partition.txt beside the folder)")
    attributes: Sequence[str] = setting((), 'e.g. ["Smiling", "-Eyeglasses"]: only faces with / without these '
                                        "(needs list_attr_celeba.txt beside the folder)")
    cache_dir: Optional[str] = setting(None, "where the decoded faces are cached (None: ~/.cache/dcgan-faces)")

    def __post_init__(self):
        self.attributes = list(self.attributes or [])
        _check_whole(self, "crop_size")
        if not isinstance(self.align_faces, bool):
            raise ValueError(f"align_faces must be True or False, got {self.align_faces!r}")


@dataclasses.dataclass
class Networks:
    """The two networks: their shape, their batch norm and the precision they compute in."""

    image_size: int = setting(64, "faces of image_size × image_size; any power of two of at least 8 (the networks "
                              "gain or lose layers)")
    z_dim: int = setting(100, "length of the latent vector z")
    generator_width: int = setting(64, "channels of the generator's last hidden layer (×8, ×4, ×2, ×1: "
                                   "512-256-128-64 at 64)")
    discriminator_width: int = setting(64, "channels of the discriminator's first layer (×1, ×2, ×4, ×8: "
                                       "64-128-256-512 at 64)")
    kernel_size: int = setting(4, "convolution kernel of both networks: 4 (Radford et al.'s code, "
                               "pytorch/examples: no uneven overlap) or 5 (DCGAN-tensorflow, the seed: 25/16 the work)")
    discriminator_norm: str = setting("batch", '"batch", or "spectral": spectral normalisation on every '
                                      "discriminator layer instead of batch norm (Miyato et al. 2018)")
    minibatch_stddev: int = setting(0, "the discriminator sees how much each group of this many faces varies "
                                    "(Karras et al. 2018's minibatch standard deviation, groups of 4 in StyleGAN2), "
                                    "so a generator that drops kinds of faces is told; 0: off")
    batchnorm_momentum: float = setting(0.9, "momentum of batch norm's moving statistics, used at generation time")
    precision: str = setting("auto", '"auto": mixed bfloat16 where the device runs it fast (CPUs with '
                             "amx_bf16 or avx512_bf16, GPUs of compute capability 8.0+), float32 elsewhere; or "
                             '"float32", "mixed_bfloat16", "mixed_float16" (loss scaling)')
    small_map_convolutions: str = setting("auto", '"matmul": the convolutions on maps of 8×8 or less as matrix '
                                          "products of their patches (the filter gradients on 8×8, the whole layer "
                                          'on 4×4: faster in bfloat16 on CPUs), "framework": TensorFlow\'s '
                                          'convolution kernels, "auto": matmul where the networks compute in '
                                          "bfloat16 on a CPU")

    def __post_init__(self):
        _check_whole(self, "image_size", "z_dim", "generator_width", "discriminator_width", "kernel_size")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two of at least 8 (64 for faces), got {self.image_size}")
        if self.discriminator_norm not in DISCRIMINATOR_NORMS:
            raise ValueError(f"discriminator_norm must be one of {', '.join(DISCRIMINATOR_NORMS)}, "
                             f"got {self.discriminator_norm!r}")
        _check_whole(self, "minibatch_stddev", minimum=0)
        if not 0 <= self.batchnorm_momentum < 1:
            raise ValueError(f"batchnorm_momentum must be in [0, 1), got {self.batchnorm_momentum!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.small_map_convolutions not in SMALL_MAP_CONVOLUTIONS:
            raise ValueError(f"small_map_convolutions must be one of {', '.join(SMALL_MAP_CONVOLUTIONS)}, "
                             f"got {self.small_map_convolutions!r}")


@dataclasses.dataclass
class Training:
    """How long, in what batches, with what optimiser and from what seed."""

    steps: int = setting(20000, "train until this step (a resumed run continues toward it)")
    batch_size: int = setting(100, "faces per step (the seed's grid of 100 was one batch)")
    generator_learning_rate: float = setting(2e-4, "Adam's learning rate for the generator (Radford et al.)")
    discriminator_learning_rate: float = setting(2e-4, "Adam's learning rate for the discriminator (TTUR: 4e-4 "
                                                 "with 1e-4 for the generator)")
    beta_1: float = setting(0.5, "Adam's beta_1 for both networks")
    learning_rate_decay: float = setting(0.0, "the share of the run's last steps over which both learning rates "
                                         "fall linearly toward 0 (CycleGAN's 0.5); 0: constant. The decay "
                                         "follows `steps`: set steps to the run you will train")
    seed: int = setting(0, "the initial weights, the 100 grid vectors, the training noise and the data order")

    def __post_init__(self):
        _check_whole(self, "steps", "batch_size")
        for name in ("generator_learning_rate", "discriminator_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be above 0, got {getattr(self, name)!r}")
        if not 0 <= self.beta_1 < 1:
            raise ValueError(f"beta_1 must be in [0, 1), got {self.beta_1!r}")
        if not 0 <= self.learning_rate_decay <= 1:
            raise ValueError("learning_rate_decay is the share of the run's last steps that decay the learning "
                             f"rates, in [0, 1] (0: constant), got {self.learning_rate_decay!r}")


@dataclasses.dataclass
class Recipe:
    """The training recipe beyond plain DCGAN (each part measured in experiments/ablation.py; PLAIN_RECIPE gives
    the original), and the moving average that draws."""

    label_smoothing: float = setting(0.0, "one-sided: the discriminator's target for real faces is 1 − this "
                                     "(ganhacks #6; 0.1 is usual)")
    flip_faces: bool = setting(False, "mirror each real face left-right with probability 1/2")
    diff_augment: Sequence[str] = setting(("translation", "cutout"), "DiffAugment (Zhao et al. 2020) of every face "
                                          'the discriminator sees: any of "color", "translation", "cutout" ([]: '
                                          'off); "color" measured worse on colour and layout (SWD)')
    reuse_fakes: bool = setting(True, "one generator forward per step: the generator step backpropagates "
                                "through the discriminator step's fakes, as pytorch/examples does (False: it "
                                "draws new z and runs the generator again, as the seed did)")
    discriminator_batches: str = setting("joint_reused_statistics", "how the discriminator meets real and fake "
                                         'faces (the default chosen at 800,000 images by the rule, docs/ablation): '
                                         '"separate" '
                                         "batches, each normalised by its own batch-norm statistics (ganhacks #4, "
                                         'pytorch/examples, the seed), or "joint": one batch of both, its statistics '
                                         "shared, so that a batch of fakes unlike the real batch as a whole (too few "
                                         "men, too little variety, which separate statistics normalise away) is seen; "
                                         '"joint_constant_statistics": joint, and in the generator\'s step the '
                                         "statistics are constants, so that the generator cannot move the real "
                                         "faces' features through them (joint drew too many very dark and very light "
                                         'faces); "joint_reused_statistics": the same, but the real half\'s '
                                         "statistics are those the discriminator's step measured, one update "
                                         "older, so that no real face goes through the discriminator twice")
    r1_gamma: float = setting(0.0, "weight γ of the zero-centred gradient penalty on the real faces the "
                              "discriminator sees, γ/2·E‖∇D(x)‖² (R1, Mescheder et al. 2018), applied every "
                              "16 steps ×16 (StyleGAN2's lazy regularisation); 0: off")
    ema_decay: float = setting(0.999, "grids, metrics and GIFs draw with an exponential moving average of the "
                               "generator's weights (0: off, the plain DCGAN recipe)")
    ema_half_life: int = setting(0, "images over which the average forgets half of what it held (StyleGAN2-ADA's "
                                 "ema_kimg × 1,000), ramped up: at most 5% of the images seen so far (its "
                                 "ema_rampup 0.05); 0: ema_decay per step instead. Used when ema_decay > 0")
    ema_statistics_batches: int = setting(10, "the average's batch-norm statistics are measured on this many "
                                          "batches of 100 of its own faces (0: copied from the trained generator)")
    extra_averages: Sequence[int] = setting((), "half-lives in images of further moving averages of the generator, "
                                            "kept beside the one that draws (each ramped up as ema_half_life is) to "
                                            "compare averages within one run: they never change training; "
                                            'experiments draw them as generators "average_<half-life>"')

    def __post_init__(self):
        self.diff_augment = [self.diff_augment] if isinstance(self.diff_augment, str) else list(self.diff_augment or [])
        if not 0 <= self.label_smoothing < 0.5:
            raise ValueError("label_smoothing must be in [0, 0.5) (0: off; 0.1 is usual), "
                             f"got {self.label_smoothing!r}")
        for name in ("flip_faces", "reuse_fakes"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        unknown = [name for name in self.diff_augment if name not in DIFF_AUGMENTATIONS]
        if unknown or len(set(self.diff_augment)) != len(self.diff_augment):
            raise ValueError(f"diff_augment must list each of {', '.join(DIFF_AUGMENTATIONS)} at most once "
                             f"([] for none), got {self.diff_augment!r}")
        if self.discriminator_batches not in DISCRIMINATOR_BATCHES:
            raise ValueError(f"discriminator_batches must be one of {', '.join(DISCRIMINATOR_BATCHES)}, "
                             f"got {self.discriminator_batches!r}")
        if not self.r1_gamma >= 0:
            raise ValueError(f"r1_gamma must be 0 (off) or above, got {self.r1_gamma!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0: no moving average), got {self.ema_decay!r}")
        _check_whole(self, "ema_statistics_batches", "ema_half_life", minimum=0)
        self.extra_averages = [self.extra_averages] if isinstance(self.extra_averages, int) else list(
            self.extra_averages or [])
        if (any(isinstance(value, bool) or not isinstance(value, int) or value < 1 for value in self.extra_averages)
                or len(set(self.extra_averages)) != len(self.extra_averages)):
            raise ValueError("extra_averages must list half-lives in images, whole numbers of at least 1, each at "
                             f"most once ([] for none), got {self.extra_averages!r}")

    @property
    def uses_ema(self) -> bool:
        """Whether the run keeps a moving average of the generator (which the checkpoints then hold)."""
        return self.ema_decay > 0


@dataclasses.dataclass
class Devices:
    """Where and how TensorFlow runs the step."""

    strategy: str = setting("default", 'one device; "mirrored": every GPU of this machine; "multi_worker": '
                            "several machines (cluster from TF_CONFIG)")
    jit_compile: Optional[bool] = setting(None, "XLA; None: on for GPUs, off on CPUs (where it was measured "
                                          "slower)")
    steps_per_execution: int = setting(1, "training steps per call into TensorFlow (more: less Python overhead "
                                       "on fast GPUs)")
    resident_data: Optional[bool] = setting(None, "keep the faces on the training device and gather each batch "
                                            "there (None: on; False: stream batches from memory)")

    def __post_init__(self):
        _check_whole(self, "steps_per_execution")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        for name in ("jit_compile", "resident_data"):
            if getattr(self, name) not in (None, True, False):
                raise ValueError(f"{name} must be None (automatic), True or False, got {getattr(self, name)!r}")


@dataclasses.dataclass
class Outputs:
    """What the run writes, and where."""

    checkpoint_dir: str = setting("my_net", "the run's folder: checkpoints, config.json, logs")
    sample_dir: str = setting("imgs", "sample grids examples-1.png, -101.png, -201.png, …")
    sample_every: int = setting(100, "a grid at step 1 and every this many steps after it")
    checkpoint_every: int = setting(500, "a checkpoint every this many steps, and whenever training stops")
    keep_checkpoints: int = setting(3, "the newest checkpoints kept")
    fresh: bool = setting(False, "True: move what checkpoint_dir and sample_dir hold into their archive/<time>/ "
                          "and start at step 0")

    def __post_init__(self):
        _check_whole(self, "sample_every", "checkpoint_every", "keep_checkpoints")


@dataclasses.dataclass
class Quality:
    """Scoring the faces while training (facegan/metrics); metrics_every 0 turns it off."""

    metrics_every: int = setting(0, "score the faces every this many steps (0: off)")
    metric_samples: int = setting(2048, "generated faces scored against as many training faces")
    metrics: Sequence[str] = setting(("swd",), 'any of "swd", "fid", "kid", "pr" (precision and recall; FID, KID '
                                     "and PR: pip install -r requirements-metrics.txt)")
    best_metric: str = setting("swd", "the network scoring lowest on it is kept in checkpoint_dir/best-<metric>/")

    def __post_init__(self):
        self.metrics = list(self.metrics or [])
        _check_whole(self, "metrics_every", minimum=0)
        _check_whole(self, "metric_samples", minimum=2)
        if self.best_metric not in self.metrics:
            raise ValueError(f"best_metric must be one of the metrics computed ({', '.join(self.metrics)}), "
                             f"got {self.best_metric!r}")
        if self.best_metric in HIGHER_IS_BETTER:
            raise ValueError(f"best_metric must be a metric where lower is better, not {self.best_metric!r} (precision "
                             "and recall: higher is better)")


GROUPS = dict(data=Data, networks=Networks, training=Training, recipe=Recipe, devices=Devices, outputs=Outputs,
              quality=Quality)


def fields() -> Iterator[Tuple[str, dataclasses.Field]]:
    """(group name, field) of every setting, in the order docs and the notebook list them."""
    for group, kind in GROUPS.items():
        for field in dataclasses.fields(kind):
            yield group, field


GROUP_OF: Dict[str, str] = {field.name: group for group, field in fields()}  # setting name → its group


class Config:
    """Every setting of a training run, in its group: config.data, .networks, .training, .recipe, .devices,
    .outputs, .quality. Made from settings by name, Config(steps=5000, kernel_size=5), or from whole groups,
    Config(networks=Networks(z_dim=64)); a bad value is a ValueError naming the setting."""

    def __init__(self, **settings):
        unknown = [name for name in settings if name not in GROUP_OF and name not in GROUPS]
        if unknown:
            raise ValueError(f"unknown settings {unknown}; the settings are listed in docs/settings.md")
        for group, kind in GROUPS.items():
            values = {name: value for name, value in settings.items() if GROUP_OF.get(name) == group}
            whole = settings.get(group)
            if whole is not None and not isinstance(whole, kind):
                raise ValueError(f"{group} must be a config.{kind.__name__}, got {type(whole).__name__}")
            setattr(self, group, dataclasses.replace(whole, **values) if whole is not None else kind(**values))
        group_size = self.networks.minibatch_stddev
        if group_size and self.training.batch_size % group_size:
            raise ValueError(f"batch_size ({self.training.batch_size}) must be a whole number of minibatch_stddev's "
                             f"groups of {group_size}: change one of them")
        if group_size and self.recipe.discriminator_batches != "separate":
            raise ValueError("minibatch_stddev's groups would mix real and fake faces in a joint batch: set "
                             'discriminator_batches="separate" or minibatch_stddev=0')

    data: Data
    networks: Networks
    training: Training
    recipe: Recipe
    devices: Devices
    outputs: Outputs
    quality: Quality

    def settings(self) -> dict:
        """Every setting by name: what Config(**settings) takes back."""
        return {field.name: getattr(getattr(self, group), field.name) for group, field in fields()}

    def replace(self, **settings) -> "Config":
        """A copy with these settings changed (by name)."""
        return Config(**{**self.settings(), **settings})

    def to_dict(self) -> dict:
        """The settings in their groups, as config.json holds them."""
        return {group: dataclasses.asdict(getattr(self, group)) for group in GROUPS}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping) -> "Config":
        """The Config of a config.json (grouped, or one flat dictionary as older versions wrote it) or of any
        namespace holding settings by name (a notebook's globals()); other keys are ignored."""
        return cls(**{name: value for name, value in flatten(values).items() if name in GROUP_OF})

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{group}={getattr(self, group)!r}" for group in GROUPS) + ")"


def flatten(values: Mapping) -> dict:
    """Settings by name from a grouped dictionary ({"networks": {"z_dim": 100}, ...}); a flat one is returned as
    it is."""
    flat = {}
    for key, value in values.items():
        if key in GROUPS and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    return flat


# The original recipe of Radford et al. and carpedm20/DCGAN-tensorflow, by settings alone: Config(**PLAIN_RECIPE).
PLAIN_RECIPE = dict(ema_decay=0.0, generator_learning_rate=2e-4, discriminator_learning_rate=2e-4, beta_1=0.5,
                    label_smoothing=0.0, discriminator_norm="batch", flip_faces=False, diff_augment=[],
                    kernel_size=5, reuse_fakes=False, precision="float32", minibatch_stddev=0,
                    discriminator_batches="separate")


def checkpoint_shape(config: Config) -> dict:
    """The settings that decide the networks' variables: a checkpoint only restores into networks with the same
    ones (the moving average, when kept, is saved with them)."""
    networks = config.networks
    return dict(image_size=networks.image_size, z_dim=networks.z_dim, generator_width=networks.generator_width,
                discriminator_width=networks.discriminator_width, kernel_size=networks.kernel_size,
                discriminator_norm=networks.discriminator_norm, minibatch_stddev=networks.minibatch_stddev,
                uses_ema=config.recipe.uses_ema)


def ramped_half_life(half_life: int, images_seen: int) -> float:
    """The half-life in images that an average of `half_life` (ema_half_life, extra_averages) has after
    `images_seen` images: ramped up as StyleGAN2-ADA's, at most EMA_RAMP of the images seen."""
    return min(float(half_life), EMA_RAMP * images_seen)
