"""Scoring a generator: its faces for fixed seeds, drawn through drawing.draw_faces, against a fixed sample of real
faces. Training, score.py, the ablation and the notebook all score through score_generator, so a score logged at
step N is the score of step N's checkpoint. Nothing here imports the training loop."""

from typing import Dict, Optional, Sequence

from facegan import drawing
from facegan.drawing import ReadyGenerator
from facegan.metrics.maths import as_uint8, real_sample
from facegan.metrics.registry import evaluate


def score_generator(generator: ReadyGenerator, real, names: Sequence[str] = ("swd",), samples: int = 2048,
                    seed: int = 0, cache_dir: Optional[str] = None, mode: str = "independent") -> Dict[str, float]:
    """The metrics of a generator's faces for the seeds seed, seed + 1, …, seed + samples − 1 (drawing.draw_faces,
    in the drawing mode `mode`) against `samples` of the real faces (a fixed sample from the same seed)."""
    faces = drawing.draw_faces(generator, seeds=range(seed, seed + samples), mode=mode, seed=seed)
    return evaluate(faces, real_sample(as_uint8(real), samples, seed), names, cache_dir, seed)


def score_checkpoint(checkpoint_dir: str, real, samples: int = 2048, names=("swd",), step=None, cache_dir=None,
                     seed: int = 0) -> Dict[str, float]:
    """The metrics of a saved run's network (the newest checkpoint, or that of `step`), drawn as training draws."""
    return score_generator(drawing.load_generator(checkpoint_dir, step), real, names, samples, seed, cache_dir)


