"""Why joint batches drew darker faces (issue #32): how bright the generated faces are, and what the shared batch
statistics reward.

    python -m experiments.brightness --celeba ../shared/celeba --runs ~/dcgan-long-recipe \
        --checkpoints joint_batches-seed1:8000,defaults-seed1:8000 --out docs/long-recipe/800k/brightness

Two parts, each written into OUT/results.json with its provenance (records.save_part), skipping what is there:
- "faces": the real faces' and each checkpoint's generated faces' mean RGB (0–255) and the spread of their
  brightness from face to face (the standard deviation of each face's mean), 2,048 faces of the judge's z, drawn
  by the average with its own statistics and by the trained generator.
- "statistics": at each checkpoint, the slope of the generator's loss −log D(fake), on joint batches of 100 real
  faces and 100 of its fakes, as every fake's brightness deviation from the batch's mean is scaled up ("spread")
  or every fake made brighter ("shift"), with the discriminator's batch statistics live (they move with the fakes)
  or held constant (networks.constant_statistics). Where the live slope is the lower, the generator gains by
  moving the statistics it shares with the real faces, not by looking more real.
"""

from facegan import onednn  # noqa: F401  (first of all: TensorFlow's fast CPU kernels, set before TensorFlow loads)

import argparse
import os
from typing import Dict, Sequence

import numpy as np

from experiments import records

BATCHES = 6  # joint batches of the probe, each of the GAN's batch size
PROBE_SEED = 0


def brightness(faces: np.ndarray) -> dict:
    """uint8 faces (n, h, w, 3): the mean of each colour channel, and the spread of brightness from face to face
    (standard deviation of each face's mean over its pixels and channels), both on the 0–255 scale."""
    faces = np.asarray(faces)
    if faces.ndim != 4 or faces.shape[-1] != 3 or not len(faces):
        raise ValueError(f"brightness takes faces of shape (n, height, width, 3), got {faces.shape}")
    values = faces.astype(np.float64)
    return dict(mean_rgb=[round(float(value), 1) for value in values.mean(axis=(0, 1, 2))],
                face_brightness_spread=round(float(values.mean(axis=(1, 2, 3)).std()), 1), faces=len(faces))


def changed_fakes(fakes, kind: str, amount):
    """The fakes (float, [-1, 1]) with their brightness spread (kind "spread": each face's deviation from the
    batch's mean brightness scaled by 1 + amount) or level (kind "shift": amount added) changed."""
    import tensorflow as tf

    if kind == "shift":
        return fakes + amount
    if kind != "spread":
        raise ValueError(f'kind must be "spread" or "shift", got {kind!r}')
    face_means = tf.reduce_mean(fakes, axis=[1, 2, 3], keepdims=True)
    return fakes + amount * (face_means - tf.reduce_mean(face_means))


def loss_slopes(gan, real_faces: np.ndarray, batches: int = BATCHES, seed: int = PROBE_SEED) -> Dict:
    """{"spread"/"shift": {"live": slope, "held": slope, "standard_error": …}}: the slope of the generator's loss
    −log D(fake) along each change of changed_fakes at 0, on `batches` joint batches (real faces drawn from
    real_faces, uint8; fakes of the trained generator in training mode, as in a step), with the discriminator's
    statistics live or held constant (networks.constant_statistics): the same loss, the gradient without the
    statistics' path. Their difference is what the generator gains by moving the statistics it shares with the
    real faces."""
    import contextlib

    import tensorflow as tf

    from facegan import networks as nets
    from facegan.images import to_float

    batch_size = gan.training.batch_size
    if len(real_faces) < batch_size:
        raise ValueError(f"the probe needs at least {batch_size} real faces, got {len(real_faces)}")
    rng = np.random.default_rng(seed)
    slopes: Dict[str, Dict[str, list]] = {}
    for _ in range(batches):
        real = to_float(real_faces[rng.choice(len(real_faces), batch_size, replace=False)])
        z = rng.standard_normal((batch_size, gan.networks.z_dim)).astype(np.float32)
        fakes = tf.cast(gan.generator(z, training=True), tf.float32)
        for kind in ("spread", "shift"):
            for statistics in ("live", "held"):
                amount = tf.constant(0.0)
                with tf.GradientTape() as tape:
                    tape.watch(amount)
                    joint = tf.concat([real, changed_fakes(fakes, kind, amount)], 0)
                    with nets.constant_statistics(gan.discriminator) if statistics == "held" else \
                            contextlib.nullcontext():
                        logits = tf.cast(gan.discriminator(tf.cast(joint, real.dtype), training=True), tf.float32)
                    loss = tf.reduce_mean(tf.nn.softplus(-logits[batch_size:]))
                slopes.setdefault(kind, {}).setdefault(statistics, []).append(float(tape.gradient(loss, amount)))
    return {kind: {statistics: _significant(np.mean(values)) for statistics, values in by.items()}
            | {"standard_error": _significant(max(np.std(values) for values in by.values()) / np.sqrt(batches))}
            for kind, by in slopes.items()}


def _significant(value: float, digits: int = 4) -> float:
    return float(f"{float(value):.{digits}g}")


def parse_checkpoints(text: str) -> list:
    """"run:step,run:step" → [(run, step)]."""
    found = []
    for part in (piece for piece in text.split(",") if piece):
        run, _, step = part.rpartition(":")
        if not run or not step.isdigit():
            raise ValueError(f"checkpoints are run:step, comma-separated (joint_batches-seed1:8000), got {part!r}")
        found.append((run, int(step)))
    return found


def measure(celeba: str, runs_dir: str, checkpoints: Sequence[tuple], out_dir: str, cache_dir=None):
    """Both parts for each checkpoint (RUNS/<run>/my_net at step), skipping those OUT/results.json holds."""
    import celeba_utils
    from facegan import drawing, runs

    image_path = os.path.join(celeba, "img_align_celeba")
    real = celeba_utils.load_faces(image_path, cache_dir=cache_dir, progress=False).images
    done = records.read_json(os.path.join(out_dir, "results.json"), {})
    if "real faces" not in done:
        records.save_part(out_dir, "real faces", dict(brightness(real), data=image_path))
    for run, step in checkpoints:
        key = f"{run}@{step}"
        if key in done:
            continue
        gan, _ = runs.load_gan(os.path.join(runs_dir, run, "my_net"), step)
        drawn = {generator: brightness(drawing.draw_faces(records.pick_generator(gan, generator),
                                                          seeds=range(records.SAMPLES)))
                 for generator in (records.DEFAULT_GENERATOR, "trained")}
        probe = loss_slopes(gan, real)
        records.save_part(out_dir, key, dict(run=run, step=step, discriminator_batches=gan.recipe.discriminator_batches,
                                             arithmetic=gan.networks.precision, data=image_path, faces=drawn,
                                             statistics=probe, probe_seed=PROBE_SEED, batches=BATCHES))
        print(key, drawn, probe, flush=True)


def main(argv=None):
    from facegan.settings_text import add_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celeba", required=True, help="the folder holding img_align_celeba/")
    parser.add_argument("--runs", required=True, help="the folder of the runs (experiments/long_recipe's RUNS)")
    parser.add_argument("--checkpoints", required=True, help="run:step, comma-separated")
    parser.add_argument("--out", required=True, help="where results.json goes")
    add_arguments(parser, ("cache_dir",))
    arguments = parser.parse_args(argv)
    try:
        checkpoints = parse_checkpoints(arguments.checkpoints)
    except ValueError as error:
        parser.error(str(error))
    measure(arguments.celeba, arguments.runs, checkpoints, arguments.out, arguments.cache_dir)


if __name__ == "__main__":
    main()
