"""Augmentations inside the training step: random mirroring of the real faces, and DiffAugment of every face the
discriminator sees. Each draws from the step's noise (facegan/noise.py: a function of the seed and the step, the same
on any number of replicas), so a resumed run continues the same draws."""

from typing import Sequence

import tensorflow as tf

from facegan.config import DIFF_AUGMENTATIONS
from facegan.noise import StepNoise


def mirror_randomly(images, noise: StepNoise):
    """Each image of a batch mirrored left-right with probability 1/2."""
    mirrored = noise.uniform((tf.shape(images)[0], 1, 1, 1)) < 0.5
    return tf.where(mirrored, tf.reverse(images, axis=[2]), images)


def adjust_colors(images, noise: StepNoise):
    """DiffAugment's "color": a random brightness shift in [-0.5, 0.5), saturation scale in [0, 2) and contrast
    scale in [0.5, 1.5), each drawn for each image (on faces in [-1, 1])."""
    shape = (tf.shape(images)[0], 1, 1, 1)
    brightness, saturation, contrast = (noise.uniform(shape) for _ in range(3))
    images = images + (brightness - 0.5)
    gray = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - gray) * (2 * saturation) + gray
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * (contrast + 0.5) + mean


def translate_randomly(images, noise: StepNoise, ratio: float = 0.125):
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


def cut_out_randomly(images, noise: StepNoise, ratio: float = 0.5):
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


def diff_augment(images, policy: Sequence[str], noise: StepNoise):
    """DiffAugment (Zhao, Liu, Lin, Zhu and Han 2020, "Differentiable Augmentation for Data-Efficient GAN
    Training"; after mit-han-lab/data-efficient-gans): the transformations of `policy`, in the order of
    DIFF_AUGMENTATIONS, applied to every face the discriminator sees, real or generated, in both networks' steps.
    The discriminator cannot memorise a small set of real faces, and, since every transformation is
    differentiable, the generator learns through it; the faces it draws are not augmented. Empty: unchanged."""
    for name in DIFF_AUGMENTATIONS:
        if name in policy:
            images = AUGMENTATIONS[name](images, noise)
    return images


