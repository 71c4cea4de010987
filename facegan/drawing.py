"""Drawing faces: the one way the project turns latent vectors, or integer seeds, into faces.

    generator = drawing.load_generator("my_net")              # a saved run's generator, ready to draw
    faces = drawing.draw_faces(generator, seeds=range(64))     # uint8, (64, 64, 64, 3)
    faces = drawing.draw_faces(generator, z)                    # any (n, z_dim) vectors

A ReadyGenerator is the network that draws (the moving average of the generator's weights when the run keeps one,
else the trained generator) with batch-norm statistics of its own, measured when it was made. Grids, GIFs, metrics,
editing, the ablation and the explorer all draw through draw_faces; projection, which needs gradients, draws through
draw_differentiable. Training moves the weights, so a ReadyGenerator is ready as of when ready_generator made it;
training asks for a new one at each grid and score.

Two modes: "independent" (the default) draws in inference mode, batch norm with its moving statistics, so each
face depends on its own z only and a batch of one draws the same face as a batch of 100; "pad" is the seed
project's way, each chunk of z padded with random vectors to a batch (90 random vectors for 10 faces in a batch of
100) and drawn with that batch's statistics, the first outputs kept.
"""

import dataclasses
import weakref
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from facegan.images import to_uint8
from facegan import runs
from facegan.gan import DCGAN

MODES = ("independent", "pad")


@dataclasses.dataclass(frozen=True)
class ReadyGenerator:
    """A generator network ready to draw, with the 100 fixed vectors of its run's sample grids (None for a bare
    network). Made by ready_generator (or load_generator); wrap a bare generator network yourself only when its
    batch-norm statistics are already the ones it should draw with."""
    network: keras.Model
    grid_latents: Optional[np.ndarray] = None
    name: str = "generator"

    @property
    def z_dim(self) -> int:
        return int(self.network.input_shape[-1])


def ready_generator(gan: DCGAN, use_average: bool = True, statistics_batches: Optional[int] = None,
                    half_life: Optional[int] = None) -> ReadyGenerator:
    """The network of a GAN that draws, ready: the moving average (use_average and the run keeps one) with
    batch-norm statistics measured on `statistics_batches` batches of its own faces (default: the recipe's
    ema_statistics_batches; 0 copies the trained generator's, how averages drew before), else the trained
    generator, whose moving statistics training keeps. `half_life` picks one of the run's extra averages
    (recipe.extra_averages) instead, made ready the same way."""
    grid_latents = gan.grid_latents.numpy()
    if half_life is not None:
        if half_life not in gan.extra_averages:
            kept = ", ".join(map(str, gan.extra_averages)) or "none"
            raise ValueError(f"This run keeps no average of half-life {half_life} images (its extra_averages: "
                             f"{kept}); set extra_averages when the run starts or resumes")
        if half_life in gan.unrestored_averages:
            raise ValueError(f"The checkpoint restored holds no average of half-life {half_life} images: the run "
                             "began keeping it at a later step; draw it from a later checkpoint")
        gan.refresh_average_statistics(statistics_batches, half_life)
        return ReadyGenerator(gan.extra_averages[half_life], grid_latents, f"average_{half_life}")
    if use_average and gan.ema_generator is not None:
        gan.refresh_average_statistics(statistics_batches)
        return ReadyGenerator(gan.ema_generator, grid_latents, "average")
    return ReadyGenerator(gan.generator, grid_latents, "trained")


def load_generator(checkpoint_dir: str = "my_net", step: Optional[int] = None,
                   use_average: bool = True) -> ReadyGenerator:
    """A saved run's generator, ready to draw (the newest checkpoint, or that of `step`)."""
    gan, _ = runs.load_gan(checkpoint_dir, step)
    return ready_generator(gan, use_average)


def draw_differentiable(generator: ReadyGenerator, z):
    """Faces as a float tensor in [-1, 1], drawn as draw_faces draws them (inference mode: each face depends on its
    own z only), with gradients flowing back to z: what projection optimises z through."""
    return generator.network(z, training=False)


def seed_vector(seed: int, z_dim: int) -> np.ndarray:
    """The latent vector of an integer seed: the same seed gives the same face in every run and tool."""
    return np.random.default_rng(seed).standard_normal(z_dim).astype(np.float32)


def seed_vectors(seeds: Sequence[int], z_dim: int) -> np.ndarray:
    return np.stack([seed_vector(int(seed), z_dim) for seed in seeds]) if len(seeds) else \
        np.zeros((0, z_dim), np.float32)


def pad_batch(z: np.ndarray, batch_size: int, seed: int = 0) -> np.ndarray:
    """z followed by random vectors up to batch_size: the seed project's way of drawing fewer faces than a batch."""
    z = np.asarray(z, np.float32)
    if len(z) > batch_size:
        raise ValueError(f"pad_batch: {len(z)} vectors do not fit in a batch of {batch_size}")
    padding = np.random.default_rng(seed).standard_normal((batch_size - len(z), z.shape[1])).astype(np.float32)
    return np.concatenate([z, padding])


def draw_faces(generator: ReadyGenerator, latents=None, *, seeds: Optional[Sequence[int]] = None,
               mode: str = "independent", batch_size: int = 100, seed: int = 0) -> np.ndarray:
    """uint8 faces, (n, size, size, 3), for latent vectors (n, z_dim) or integer seeds (seed_vector), drawn in
    batches of batch_size. mode "pad" pads each batch with random vectors from `seed` (the module's doc)."""
    if not isinstance(generator, ReadyGenerator):
        raise ValueError(f"draw_faces takes a ReadyGenerator, got {type(generator).__name__}: use "
                         "drawing.ready_generator(gan) or drawing.load_generator(checkpoint_dir)")
    if (latents is None) == (seeds is None):
        raise ValueError("draw_faces takes latent vectors or seeds, one of the two")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    z = seed_vectors(list(seeds), generator.z_dim) if seeds is not None else np.asarray(latents, np.float32)
    if z.ndim != 2 or z.shape[1] != generator.z_dim:
        raise ValueError(f"latent vectors must have shape (n, {generator.z_dim}), got {tuple(z.shape)}")
    if mode == "pad":
        return to_uint8(_padded_images(generator.network, z, batch_size, seed))
    return to_uint8(_images(generator.network, z, batch_size))


_compiled_generators = weakref.WeakKeyDictionary()


def _inference_function(network: keras.Model):
    """One compiled inference function per network (traced once per batch size). The function holds the network
    weakly, so the cache does not keep alive a network nothing else uses."""
    if network not in _compiled_generators:
        reference = weakref.ref(network)
        _compiled_generators[network] = tf.function(lambda z: reference()(z, training=False), reduce_retracing=True)
    return _compiled_generators[network]


def _images(network: keras.Model, z: np.ndarray, batch_size: int) -> np.ndarray:
    """Images in [-1, 1], in inference mode: each depends on its own z only, never on the rest of its batch."""
    infer = _inference_function(network)
    parts = [infer(tf.constant(z[start:start + batch_size])).numpy() for start in range(0, len(z), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0,) + tuple(network.output_shape[1:]), np.float32)


def _padded_images(network: keras.Model, z: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
    """Images in [-1, 1], each chunk of z padded to batch_size and run in training mode (batch statistics); the
    network's moving statistics are left as they were."""
    saved = [variable.numpy() for variable in network.non_trainable_variables]
    images = []
    try:
        for start in range(0, len(z), batch_size):
            chunk = z[start:start + batch_size]
            batch = pad_batch(chunk, batch_size, seed + start)
            images.append(network(tf.constant(batch), training=True)[:len(chunk)].numpy())
    finally:
        for variable, value in zip(network.non_trainable_variables, saved):
            variable.assign(value)
    return np.concatenate(images) if images else np.zeros((0,) + tuple(network.output_shape[1:]), np.float32)
