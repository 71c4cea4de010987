"""Attribute coverage: which faces a generator draws, by the share of its faces the attribute classifier calls
positive for each attribute, against the same classifier's share on real faces. FID hides a generator that
rarely draws men or glasses; this shows it, attribute by attribute.

    classifier, names = attributes.load_classifier("my_net/attributes")
    rows = coverage.attribute_coverage(classifier, names, generated, real)   # one row per attribute
    coverage.softness_bias(classifier, names, real)   # the judge's own bias: real faces made soft
"""

from typing import Dict, Sequence

import numpy as np

from facegan import attributes

CANONICAL = attributes.CANONICAL  # what coverage is judged on


def positive_shares(classifier, faces) -> np.ndarray:
    """The share of the faces (uint8, or floats in [-1, 1]) the classifier calls positive for each attribute."""
    return (attributes.probabilities(classifier, faces) > 0.5).mean(axis=0)


def attribute_coverage(classifier, names: Sequence[str], generated, real) -> Dict[str, dict]:
    """Per attribute: the generated and the real faces' positive shares, and their ratio (1: drawn as often as the
    data holds it; 0.2: five times too rarely). The ratio is None where no real face is called positive."""
    drawn, held = positive_shares(classifier, generated), positive_shares(classifier, real)
    return {name: dict(generated=round(float(drawn[index]), 4), real=round(float(held[index]), 4),
                       ratio=round(float(drawn[index] / held[index]), 3) if held[index] > 0 else None)
            for index, name in enumerate(names)}


def softened(faces: np.ndarray, size: int) -> np.ndarray:
    """uint8 faces taken down to size × size and back (antialiased, bilinear): as soft as faces drawn that small."""
    import tensorflow as tf

    full = faces.shape[1]
    small = tf.image.resize(tf.cast(faces, tf.float32), (size, size), antialias=True)
    return np.clip(np.round(tf.image.resize(small, (full, full)).numpy()), 0, 255).astype(np.uint8)


def softness_bias(classifier, names: Sequence[str], real, sizes: Sequence[int] = (32, 16)) -> Dict[str, dict]:
    """The classifier's positive shares of real faces as they are and softened through each size: how far its
    verdicts move with sharpness alone (generated faces are softer than real ones). Keyed "as they are" and
    "through N×N", each {attribute: share}."""
    versions = {"as they are": real, **{f"through {size}×{size}": softened(real, size) for size in sizes}}
    return {label: {name: round(float(share), 4) for name, share in zip(names, positive_shares(classifier, faces))}
            for label, faces in versions.items()}


def worst_canonical(rows: Dict[str, dict], canonical: Sequence[str] = CANONICAL) -> tuple:
    """(attribute, relative error) of the canonical attribute drawn furthest from the data's share: what the
    coverage goal, every canonical attribute within 25% of the real share, is judged on."""
    errors = {name: abs(rows[name]["ratio"] - 1) for name in canonical
              if name in rows and rows[name]["ratio"] is not None}
    if not errors:
        raise ValueError("no canonical attribute with a real share to compare: is this CelebA's classifier?")
    name = max(errors, key=errors.get)
    return name, round(errors[name], 3)
