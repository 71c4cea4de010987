"""What a run's own discriminator says of groups of faces: its mean logit on each (higher: more real), measured as
it judges while training (training mode, on batches of the faces mixed together, so each group shares its
batches' statistics with the others).

    view = discriminator.mean_logits(gan.discriminator, faces, {"men": is_male, "women": ~is_male})

Two questions it answers along a run (experiments/long_run.py --part discriminator):
- does the discriminator remember its training faces? It would call them more real than held-out faces of the same
  resolution (the overfitting that Karras et al. 2020, ADA, measure by the sign of its outputs);
- why does the generator draw a kind of face too rarely? When the discriminator calls the real ones of that kind
  as real as the others but the generated ones less real, drawing them costs the generator: they are drawn worse.
"""

from typing import Dict

import numpy as np

from facegan.images import to_float


def logits(discriminator, faces, batch_size: int = 100) -> np.ndarray:
    """The discriminator's logit for each face (uint8, or floats in [-1, 1]), in training mode on consecutive
    batches of batch_size (the last one shorter): how it judges while training. Nothing it holds changes."""
    import tensorflow as tf

    faces = np.asarray(faces)
    moving = [weight.numpy() for weight in discriminator.non_trainable_weights]
    out = []
    for start in range(0, len(faces), batch_size):
        batch = faces[start:start + batch_size]
        batch = to_float(tf.constant(batch)) if batch.dtype == np.uint8 else tf.constant(batch, tf.float32)
        out.append(discriminator(batch, training=True).numpy().reshape(-1))
    for weight, value in zip(discriminator.non_trainable_weights, moving):  # training mode moved batch norm's
        weight.assign(value)
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def mean_logits(discriminator, faces, groups: Dict[str, np.ndarray], batch_size: int = 100,
                seed: int = 0) -> Dict[str, dict]:
    """Per group (a boolean mask over the faces): its faces' mean logit and their number. The faces are judged in
    one shuffled order (fixed by seed), so that every batch mixes the groups."""
    faces = np.asarray(faces)
    for name, mask in groups.items():
        if len(mask) != len(faces):
            raise ValueError(f"group {name!r} marks {len(mask)} faces, there are {len(faces)}")
    order = np.random.default_rng(seed).permutation(len(faces))
    judged = np.empty(len(faces), np.float32)
    judged[order] = logits(discriminator, faces[order], batch_size)
    return {name: dict(mean_logit=round(float(judged[mask].mean()), 4) if mask.any() else None,
                       faces=int(mask.sum())) for name, mask in groups.items()}
