"""The recipes the experiments train: each candidate change to the DCGAN recipe as the settings it changes, and the
training settings of one run of them (the plain recipe, the changes, the moving average kept for scoring, and a
budget of images). The ablation, the data-size measurement and the long run all train through run_config."""

import math
import os
from typing import Dict, Optional

from experiments.records import run_name
from facegan.config import Config, PLAIN_RECIPE

# Each candidate as the settings it changes; "plain" is the original recipe (PLAIN_RECIPE).
SETTINGS: Dict[str, dict] = {
    "plain": {},
    "ttur": dict(generator_learning_rate=1e-4, discriminator_learning_rate=4e-4),  # Heusel et al. 2017
    "label_smoothing": dict(label_smoothing=0.1),  # one-sided, Salimans et al. 2016, ganhacks #6
    "spectral_norm": dict(discriminator_norm="spectral"),  # Miyato et al. 2018
    "flip_faces": dict(flip_faces=True),  # horizontal flips of the real faces
    "diff_augment": dict(diff_augment=["color", "translation", "cutout"]),  # Zhao et al. 2020
    # DiffAugment without its colour jitter, which may shift the palette (issue #16: SWD's coarsest level)
    "diff_augment_translation_cutout": dict(diff_augment=["translation", "cutout"]),
    # speed candidates: less work per image, or faster arithmetic, for (ideally) the same faces
    "kernel_4": dict(kernel_size=4),  # Radford et al.'s own code and pytorch/examples: no uneven overlap
    "reuse_fakes": dict(reuse_fakes=True),  # one generator forward per step, as pytorch/examples
    "auto_precision": dict(precision="auto"),  # mixed bfloat16 where the machine has bfloat16 instructions
    # the small maps' convolutions by TensorFlow's kernels, as before facegan/convolutions.py (issue #34: the same
    # faces?)
    "framework_convolutions": dict(small_map_convolutions="framework"),
}
EMA_DECAY = 0.999  # the average kept in every run


def overrides_of(setting: str) -> dict:
    """The settings of a name from SETTINGS, or of several joined by '+'."""
    values = {}
    for name in setting.split("+"):
        if name not in SETTINGS:
            raise ValueError(f"Unknown setting {name!r} in {setting!r}: choose among {', '.join(SETTINGS)}, "
                             "or join several with '+'")
        values.update(SETTINGS[name])
    return values


def run_config(setting: str, data: str, budget: int, runs_dir: str, batch_size: int = 100, seed: int = 0,
               cache_dir: Optional[str] = None, **network) -> Config:
    """The training settings of one ablation run: the plain recipe, the setting's changes, the moving average
    kept for scoring, and ceil(budget / batch_size) steps, from the training seed `seed`."""
    folder = os.path.join(runs_dir, run_name(setting, seed))
    values = {**PLAIN_RECIPE, "ema_decay": EMA_DECAY, **overrides_of(setting), **network}
    return Config(image_path=data, cache_dir=cache_dir, batch_size=batch_size, seed=seed,
                        steps=math.ceil(budget / batch_size), checkpoint_dir=os.path.join(folder, "my_net"),
                        sample_dir=os.path.join(folder, "imgs"), sample_every=100, checkpoint_every=100,
                        keep_checkpoints=2, metrics_every=0, **values)


def images_seen_by(config: Config, steps: Optional[int] = None) -> int:
    """The real faces a run's discriminator has seen after `steps` (default: all of the run's steps): the budget
    by which runs are compared."""
    return (config.training.steps if steps is None else steps) * config.training.batch_size


# What the long budget's candidates change from: the defaults before the rule adopted joint_reused_statistics at
# 800,000 images. Every 800k and 150k record was measured from it, so "defaults" there names these settings (the
# separate batches of ganhacks #4), not facegan/config.py's today.
LONG_BASE = dict(discriminator_batches="separate")

# The long budget's candidates (experiments/long_recipe.py, experiments/time_to_fid.py --recipe): each as the
# settings it changes from LONG_BASE over today's defaults (facegan/config.py), not from the plain recipe as SETTINGS
# above.
LONG_CANDIDATES: Dict[str, dict] = {
    "defaults": {},
    "minibatch_stddev": dict(minibatch_stddev=4),  # Karras et al. 2018: the discriminator sees each group's spread
    "spectral_norm": SETTINGS["spectral_norm"],  # no batch norm in the discriminator
    "translation_only": dict(diff_augment=["translation"]),  # DiffAugment without its cutout
    "no_augment": dict(diff_augment=[]),  # no DiffAugment: does the augmentation drop the men?
    # StyleGAN2-ADA's average (its "auto" ema_kimg at batch 32: 10,000 images, ramped up), against decay 0.999 per
    # step of 100 faces (a half-life of 69,300 images). It does not change training: the trained generator is
    # the defaults', and only how it is averaged differs
    "ema_half_life": dict(ema_half_life=10_000),
    "ttur": SETTINGS["ttur"],
    "batch_64": dict(batch_size=64),  # more updates for the same images
    # Mescheder et al. 2018's zero-centred penalty on real faces, lazily (StyleGAN2): γ = 1 (screened: far too
    # strong for this discriminator), and about StyleGAN2-ADA's heuristic for 64 pixels at batch 100 (0.008)
    "r1_gamma1": dict(r1_gamma=1.0),
    "r1_gamma0.01": dict(r1_gamma=0.01),
    "lr_decay": dict(learning_rate_decay=0.5),  # both learning rates fall linearly to 0 over the run's second half
    # one batch of real and fake faces in the discriminator: batch norm's statistics shared, so that a batch of fakes
    # with too few men or too little variety is no longer normalised to look like the real batch
    "joint_batches": dict(discriminator_batches="joint"),
    # joint, with the generator's step unable to move the shared statistics (joint drew too many extreme faces)
    "joint_constant_statistics": dict(discriminator_batches="joint_constant_statistics"),
    # the same, the real half's statistics in the generator's step those the discriminator's step measured (one
    # update older): no real face goes through the discriminator twice (faster by the real half's forward pass)
    "joint_reused_statistics": dict(discriminator_batches="joint_reused_statistics"),
    # capacity: the generator 1.5× as wide (768-384-192-96; about 2.25× its work, a step about 1.4× as long). The
    # discriminator at 800,000 images rejects most generated faces and calls training and held-out faces alike
    # (docs/long-run): is the generator what limits the faces late?
    "wide_generator": dict(generator_width=96),
}


def long_candidate_settings(candidate: str) -> dict:
    """The settings a candidate changes from today's defaults: LONG_BASE, then one of LONG_CANDIDATES, or several
    joined by "+" ("translation_only+ttur": both changes at once)."""
    values: dict = {}
    for part in candidate.split("+"):
        if part not in LONG_CANDIDATES:
            raise ValueError(f"Unknown candidate {part!r}: choose among {', '.join(LONG_CANDIDATES)}, or join several "
                             "with '+'")
        clashing = [name for name, value in LONG_CANDIDATES[part].items() if values.get(name, value) != value]
        if clashing:
            raise ValueError(f"Candidate {candidate!r} sets {', '.join(clashing)} twice, differently: join "
                             "candidates that change different settings")
        values.update(LONG_CANDIDATES[part])
    return {**LONG_BASE, **values}
