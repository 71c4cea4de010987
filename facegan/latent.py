"""Walks through the latent space: waypoints, slerp, and writing GIFs and strips of frames.

    generator = drawing.load_generator("my_net")
    latent.interpolate(generator, waypoints=[[0, 3], [9, 3]], frames=30)   # testimgs/test.gif and its strip

or step by step:

    z = latent.latent_path(latent.waypoint_vectors([[0, 3], [9, 3]], generator.grid_latents), frames=30)
    latent.write_gif(drawing.draw_faces(generator, z), "testimgs/test.gif", fps=10)

Waypoints are cells [row, column] of the training grid (the 100 fixed vectors of imgs/examples-*.png),
"column C" or "row R" (that line of the grid, top to bottom or left to right), integer seeds, "random", or a z
itself (a projected photo, an edited face: facegan/editing.py).
"""

import dataclasses
import math
from typing import Optional, Sequence

import numpy as np

from facegan.images import atomic_write, image_grid, save_png
from facegan.drawing import MODES, ReadyGenerator, draw_faces, seed_vector

KINDS = ("slerp", "linear")
GRID_ROWS = GRID_COLUMNS = 10


# --------------------------------------------------------------------------------------------- vectors

def waypoint_vectors(waypoints: Sequence, grid_latents, seed: int = 0) -> np.ndarray:
    """Resolve the waypoints of a path (see the module's doc) to an array of latent vectors, one row each."""
    vectors = resolve_waypoints(waypoints, grid_latents, seed)
    if len(vectors) < 2:
        raise ValueError(f"waypoints: a path needs at least 2 points, got {len(vectors)} from {list(waypoints)!r}")
    return vectors


def resolve_waypoints(waypoints: Sequence, grid_latents, seed: int = 0) -> np.ndarray:
    """The latent vectors of any number of waypoints, one row each ("column C" gives ten)."""
    grid_latents = np.asarray(grid_latents)
    z_dim = grid_latents.shape[1]
    random = np.random.default_rng(seed)
    vectors = []
    for waypoint in waypoints:
        if isinstance(waypoint, str) and waypoint.split()[0] in ("column", "row") and len(waypoint.split()) == 2:
            line, number = waypoint.split()[0], int(waypoint.split()[1])
            _check_cell(0 if line == "column" else number, number if line == "column" else 0, waypoint)
            cells = [(row, number) for row in range(GRID_ROWS)] if line == "column" else \
                [(number, column) for column in range(GRID_COLUMNS)]
            vectors.extend(grid_latents[row * GRID_COLUMNS + column] for row, column in cells)
        elif isinstance(waypoint, str) and waypoint == "random":
            vectors.append(random.standard_normal(z_dim).astype(np.float32))
        elif isinstance(waypoint, (int, np.integer)) and not isinstance(waypoint, bool):
            vectors.append(seed_vector(int(waypoint), z_dim))
        elif isinstance(waypoint, np.ndarray) and waypoint.shape == (z_dim,):  # a z itself: a projected photo, an edit
            vectors.append(waypoint.astype(np.float32))
        elif isinstance(waypoint, (list, tuple)) and len(waypoint) == 2:
            row, column = (int(value) for value in waypoint)
            _check_cell(row, column, waypoint)
            vectors.append(grid_latents[row * GRID_COLUMNS + column])
        else:
            raise ValueError(f"waypoints: {waypoint!r} is not a waypoint; use [row, column] of the 10×10 grid, "
                             f"'column C', 'row R', an integer seed, 'random' or a z of {z_dim} numbers")
    return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, z_dim), np.float32)


def _check_cell(row: int, column: int, waypoint):
    if not (0 <= row < GRID_ROWS and 0 <= column < GRID_COLUMNS):
        raise ValueError(f"waypoints: {waypoint!r} is outside the {GRID_ROWS}×{GRID_COLUMNS} grid "
                         f"(rows and columns 0–{GRID_ROWS - 1})")


def typical_norm(z_dim: int) -> float:
    """The mean length of a standard Gaussian z of z_dim numbers: √2·Γ((d+1)/2)/Γ(d/2), about √(d − ½) (9.975 for
    100); nearly every z the network trained on has a length within a few percent of it."""
    return float(math.sqrt(2) * math.exp(math.lgamma((z_dim + 1) / 2) - math.lgamma(z_dim / 2)))


def to_typical_norm(z) -> np.ndarray:
    """Each row of z scaled to the prior's typical length, its direction kept: a mean of several z (which is
    shorter, about 1/√k of it for k vectors) becomes a vector like those the network was trained on."""
    z = np.asarray(z, np.float64)
    norms = np.linalg.norm(z, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("to_typical_norm: a zero vector has no direction to keep")
    return (z / norms * typical_norm(z.shape[-1])).astype(np.float32)


# --------------------------------------------------------------------------------------------- paths

def slerp(a, b, t):
    """Spherical interpolation from a (t=0) to b (t=1) along the great circle, scaling the norm linearly; the
    path for Gaussian z (ganhacks #3, White 2016). t may be an array: one row per value."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    norm_a, norm_b = np.linalg.norm(a), np.linalg.norm(b)
    unit_a, unit_b = a / norm_a, b / norm_b
    omega = np.arccos(np.clip(np.dot(unit_a, unit_b), -1.0, 1.0))
    if omega < 1e-6:  # the same direction: a straight line is the great circle
        return linear(a, b, t[..., 0])
    direction = (np.sin((1 - t) * omega) * unit_a + np.sin(t * omega) * unit_b) / np.sin(omega)
    return (direction * ((1 - t) * norm_a + t * norm_b)).astype(np.float32)


def linear(a, b, t):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    t = np.asarray(t, np.float64)[..., None]
    return ((1 - t) * a + t * b).astype(np.float32)


def latent_path(waypoints: np.ndarray, frames: int, kind: str = "slerp", closed: bool = False) -> np.ndarray:
    """`frames` vectors through the waypoints, evenly spread over the segments; the first frame is the first
    waypoint, the last the last one (a closed path returns toward the first without repeating it)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 2:
        raise ValueError(f"frames must be a whole number of at least 2, got {frames!r}")
    waypoints = np.asarray(waypoints, np.float32)
    if closed:
        waypoints = np.concatenate([waypoints, waypoints[:1]])
    segments = len(waypoints) - 1
    positions = np.linspace(0, segments, frames, endpoint=not closed)
    interpolate = slerp if kind == "slerp" else linear
    path = []
    for position in positions:
        segment = min(int(position), segments - 1)
        path.append(interpolate(waypoints[segment], waypoints[segment + 1], position - segment))
    return np.stack(path).astype(np.float32)


# --------------------------------------------------------------------------------------------- frames

def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement for viewing (factor 1: unchanged)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ValueError(f"upscale must be a whole number of at least 1, got {factor!r}")
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


# --------------------------------------------------------------------------------------------- files

def write_gif(frames: np.ndarray, path: str, fps: float = 10) -> str:
    """An endlessly looping GIF of uint8 frames, written atomically."""
    import imageio.v3 as iio

    if not fps > 0:
        raise ValueError(f"fps must be above 0, got {fps!r}")
    with atomic_write(path) as handle:
        iio.imwrite(handle, list(frames), extension=".gif", plugin="pillow", duration=round(1000 / fps), loop=0)
    return path


def strip_columns(count: int, most: int = 10) -> int:
    """Columns for `count` frames: the fewest rows of at most `most` columns, then as few columns as fill them
    (24 frames: 3 rows of 8, not 3 rows of 10 ending in 6 empty cells)."""
    rows = max(1, math.ceil(count / most))
    return max(1, math.ceil(count / rows))


def write_strip(frames: np.ndarray, path: str, columns: Optional[int] = None) -> str:
    """The frames in one picture, in order, `columns` to a row (default: strip_columns)."""
    columns = columns or strip_columns(len(frames))
    save_png(image_grid(frames, columns=min(columns, len(frames))), path)
    return path


@dataclasses.dataclass
class Interpolation:
    """A rendered path: its latent vectors, one per frame, and the frames (uint8, upscaled)."""
    latents: np.ndarray
    frames: np.ndarray


def interpolate(generator: ReadyGenerator, waypoints: Sequence = ([0, 0], [9, 0]), frames: int = 10,
                kind: str = "slerp", closed: bool = False, fps: float = 10, mode: str = "independent",
                upscale_factor: int = 1, gif_path: str = "testimgs/test.gif",
                strip_path: Optional[str] = "testimgs/examples.png", batch_size: int = 100,
                seed: int = 0) -> Interpolation:
    """Render a path through the waypoints as a GIF (and the frames as one strip), drawn by `generator`
    (drawing.ready_generator(gan, use_average=False) draws with the trained generator instead of its average)."""
    if generator.grid_latents is None:
        raise ValueError("interpolate needs a run's generator, whose grid vectors the waypoints name: "
                         "drawing.load_generator(checkpoint_dir) or drawing.ready_generator(gan)")
    z = latent_path(waypoint_vectors(waypoints, generator.grid_latents, seed), frames, kind, closed)
    images = upscale(draw_faces(generator, z, mode=mode, batch_size=batch_size, seed=seed), upscale_factor)
    write_gif(images, gif_path, fps)
    if strip_path:
        write_strip(images, strip_path)
    return Interpolation(z, images)


def compare_modes(generator: ReadyGenerator, z: np.ndarray, batch_size: int = 100, seed: int = 0) -> np.ndarray:
    """The frames of z in each of the drawing modes, one row per mode, as one picture."""
    rows = [draw_faces(generator, z, mode=mode, batch_size=batch_size, seed=seed) for mode in MODES]
    return image_grid(np.concatenate(rows), rows=len(MODES), columns=len(z))
