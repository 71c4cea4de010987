"""Pictures and files, whatever they hold: floats ↔ uint8, grids of faces, PNGs on disk and in memory, and the one
atomic write every file the project makes goes through (a crash or a stop never leaves a half-written file)."""

import contextlib
import io
import math
import os
from typing import Optional

import numpy as np
from PIL import Image


def to_uint8(images) -> np.ndarray:
    """[-1, 1] floats → uint8 [0, 255]."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def to_float(images):
    """uint8 [0, 255] → float32 [-1, 1], as a TensorFlow tensor. A product with the reciprocal, not a division,
    which TensorFlow's graph optimiser may rewrite as that product in one graph and not another: faces converted in
    tf.data and inside a training step (resident data) are then bit-identical."""
    import tensorflow as tf
    return tf.cast(images, tf.float32) * (1.0 / 127.5) - 1.0


def image_grid(images, rows: Optional[int] = None, columns: Optional[int] = None) -> np.ndarray:
    """(n, h, w, 3) images (uint8, or floats in [-1, 1]) → one (rows·h, columns·w, 3) uint8 picture, row by row,
    with no gaps, so that tile (r, c) is images[r · columns + c]."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = rows or math.ceil(count / columns)
    if rows * columns < count:
        raise ValueError(f"A {rows}×{columns} grid cannot hold {count} images")
    padded = np.zeros((rows * columns, height, width, channels), np.uint8)
    padded[:count] = images
    return padded.reshape(rows, columns, height, width, channels).swapaxes(1, 2).reshape(
        rows * height, columns * width, channels)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb"):
    """Open a temporary file beside path and rename it over path only once it is complete, so a crash or a
    stop never leaves a half-written file (readers see the old file or the new one)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(temporary, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def png_file(picture: np.ndarray) -> io.BytesIO:
    """A uint8 picture as a PNG in memory, read from its start: what load_face reads like a file on disk, and what
    a widget shows (png_file(picture).getvalue())."""
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


def save_png(picture: np.ndarray, path: str):
    """Write a uint8 picture as PNG, atomically."""
    with atomic_write(path) as handle:
        Image.fromarray(picture).save(handle, format="PNG")
