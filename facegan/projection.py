"""Your own photo as a latent vector: `project(generator, discriminator, "me.jpg")` finds the z whose face best
matches the photo, aligned first as CelebA's faces are (facegan.alignment), so it can be a waypoint or be edited.

Keras's Adam moves z from several starts at once, minimising a pixel term, a feature term from the trained
discriminator and, given the attribute classifier, a perceptual term on its features (LPIPS's distance without
its learned weights); it draws through drawing.draw_differentiable. stylegan2-ada's projector, by contrast,
optimises w with LPIPS.
"""

import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

import celeba_utils
from facegan import alignment, drawing
from facegan.drawing import ReadyGenerator, draw_faces
from facegan.images import png_file, to_float


@dataclasses.dataclass
class Projection:
    z: np.ndarray  # the best match's latent vector: a waypoint like any other
    face: np.ndarray  # uint8, what the network draws from it
    photo: np.ndarray  # uint8, the photo cropped and scaled as training faces are
    pixel_error: float  # RMS difference of face and photo, 0–255 scale
    random_error: float  # the same for the median of 64 random faces: how far an unfitted face is
    seconds: float


def _feature_network(discriminator):
    """The discriminator's last convolution features (before the logit): what the feature term compares."""
    last = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.LeakyReLU)][-1]
    return keras.Model(discriminator.inputs, last.output)


def perceptual_network(classifier) -> keras.Model:
    """The attribute classifier's activations after each of its convolutions: a network trained on real faces to
    tell 40 of their attributes apart, whose features compare faces as LPIPS compares them with VGG's (Zhang et
    al. 2018), without weights from the internet."""
    layers = [layer for layer in classifier.layers if isinstance(layer, keras.layers.ReLU)]
    if not layers:
        raise ValueError("perceptual_network takes the attribute classifier (attributes.load_classifier)")
    return keras.Model(classifier.inputs, [layer.output for layer in layers])


def perceptual_distance(features_a, features_b):
    """LPIPS's distance without its learned weights: at each layer, every position's channels scaled to unit
    length, the squared differences summed over channels and averaged over positions; summed over layers. One
    value per face; features_b may be a single face's, compared with each of features_a."""
    total = 0.0
    for a, b in zip(features_a, features_b):
        a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
        a = a / (tf.norm(a, axis=-1, keepdims=True) + 1e-10)
        b = b / (tf.norm(b, axis=-1, keepdims=True) + 1e-10)
        total += tf.reduce_mean(tf.reduce_sum(tf.square(a - b), axis=-1), axis=[1, 2])
    return total


def read_photo(photo, image_size: int = 64, crop_size: int = 108, align: bool = True) -> np.ndarray:
    """A photo (path or HWC uint8 array) as training faces are made (celeba_utils.load_face). With align (the
    default), a photo that is not already an aligned face (CelebA's 178×218 shape, or image_size square) has its
    face found and aligned as CelebA's are first (facegan.alignment); no face, or several, is refused with a
    ValueError naming the photo."""
    name = photo if isinstance(photo, str) else "the photo"
    if isinstance(photo, str):
        if not os.path.isfile(photo):
            raise FileNotFoundError(f"No photo at {photo}")
        source = photo
    else:
        array = np.asarray(photo)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"photo must be a path or a uint8 (height, width, 3) array, got {array.dtype} "
                             f"{array.shape}")
        source = png_file(array)
    try:
        face = celeba_utils.load_face(source, image_size, crop_size, align=align)
    except alignment.NoSingleFace:
        raise
    except Exception as error:
        raise ValueError(f"{name} cannot be read as an image ({error}): give a JPEG or PNG photo of a face") \
            from None
    if face.reshape(-1, 3).astype(np.float32).std(axis=0).max() < 4:  # every channel nearly constant
        raise ValueError(f"{name} is nearly one flat colour: there is no face in it to match")
    return face


def project(generator: ReadyGenerator, discriminator: keras.Model, photo, starts: int = 8, steps: int = 200,
            learning_rate: float = 0.1, feature_weight: float = 0.5, seed: int = 0, crop_size: int = 108,
            usable_ratio: float = 0.75, align: bool = True, perceptual=None,
            perceptual_weight: float = 0.1) -> Projection:
    """The z whose face best matches a photo: Adam on `starts` random z at once, minimising the mean squared
    pixel difference plus feature_weight × that of the discriminator's features, plus, given the attribute
    classifier as `perceptual`, perceptual_weight × the perceptual distance of its features
    (perceptual_distance), for `steps` steps; the best start wins. The photo is read by read_photo (aligned
    first, unless align=False). A photo whose best match is not clearly closer than a random face (pixel error
    above usable_ratio × the random faces' median) is refused: it is not a face this network can draw."""
    start_time = time.perf_counter()
    target_face = read_photo(photo, int(generator.network.output_shape[1]), crop_size, align)
    target = to_float(target_face[None])
    features = _feature_network(discriminator)
    target_features = features(target, training=False)
    looks = perceptual_network(perceptual) if perceptual is not None else None
    target_looks = looks(target, training=False) if looks is not None else None
    z = tf.Variable(np.random.default_rng(seed).standard_normal((starts, generator.z_dim)).astype(np.float32))
    optimizer = keras.optimizers.Adam(learning_rate)  # on z alone

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            images = drawing.draw_differentiable(generator, z)
            pixel = tf.reduce_mean(tf.square(images - target), axis=[1, 2, 3])
            feature = tf.reduce_mean(tf.square(tf.cast(features(images, training=False), tf.float32)
                                               - tf.cast(target_features, tf.float32)), axis=[1, 2, 3])
            loss = pixel + feature_weight * feature
            if looks is not None:
                loss += perceptual_weight * perceptual_distance(looks(images, training=False), target_looks)
            total = tf.reduce_sum(loss)  # inside the tape: each start's z gets its own loss's gradient
        optimizer.apply_gradients([(tape.gradient(total, z), z)])
        return loss

    for _ in range(steps):
        loss = step()
    best = int(tf.argmin(loss))
    face = draw_faces(generator, z.numpy()[best:best + 1])[0]
    random_faces = draw_faces(generator, np.random.default_rng(seed + 1).standard_normal(
        (64, generator.z_dim)).astype(np.float32))
    error = rms_difference(face, target_face)
    random_error = float(np.median(rms_difference(random_faces, target_face)))
    name = photo if isinstance(photo, str) else "the photo"
    if error > usable_ratio * random_error:
        raise ValueError(f"{name}: the best match ({error:.1f} RMS) is barely closer than a random face "
                         f"({random_error:.1f}): it does not look like a face this network can draw. Use a "
                         "roughly frontal face photo, upright, with the face clearly visible")
    return Projection(z.numpy()[best], face, target_face, error, random_error, time.perf_counter() - start_time)


def rms_difference(a: np.ndarray, b: np.ndarray):
    """The root-mean-square difference of two uint8 pictures on the 0–255 scale; of a batch of pictures (n, h, w, 3)
    against one picture, one value per picture."""
    value = np.sqrt(np.mean((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2, axis=(-3, -2, -1)))
    return float(value) if np.ndim(value) == 0 else value
