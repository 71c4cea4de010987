"""What every experiment's record holds, and how it is kept: results files written whole and atomically, the
judge that scores every run (its seed, its sample sizes, the generators and how each draws), and the provenance a
published number needs (machine, precision, data, reference, seed, date). It loads no TensorFlow until a function
that draws or reads a run is called, so a process that only reads records (time_to_fid's peer) stays free of it."""

import datetime
import json
import os
import re
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from facegan import devices
from facegan.images import atomic_write, save_png

if TYPE_CHECKING:
    from facegan.config import Config
    from facegan.drawing import ReadyGenerator
    from facegan.gan import DCGAN

SAMPLES = 2048  # the judge: 2,048 generated faces against as many real faces
GENERATORS = ("trained", "trained_batch_statistics", "average", "average_precise_bn")
DRAWING_MODES = {  # how each generator draws its faces: a record says it beside its scores
    "trained": "the trained generator, batch norm's moving statistics",
    "trained_batch_statistics": "the trained generator, batch statistics of batches of 100 (the last padded with "
                                "random vectors: the seed project's way, drawing.draw_faces mode 'pad')",
    "average": "the moving average, the trained generator's batch-norm statistics",
    "average_precise_bn": "the moving average, batch-norm statistics of its own faces",
}
DEFAULT_GENERATOR = "average_precise_bn"  # how faces are drawn by default: what chooses the settings
STANDING_STATISTICS_BATCHES = 10  # average_precise_bn: its batch-norm statistics from 10 batches of 100 of its faces
GRID_SEEDS = range(10_000, 10_064)  # the faces of the published grids: the same z for every setting
JUDGE_SEED = 0  # the generated faces' z and the sample of real faces they are scored against, for every run
CODE_AT_START = devices.code_version()  # the project's git commit as this process started (provenance())


# --------------------------------------------------------------------------------------------- files

def run_name(setting: str, seed: int = 0) -> str:
    """A run's folder and grid name: the setting, and the training seed when it is not the ablation's 0."""
    return setting if seed == 0 else f"{setting}-seed{seed}"


def parse_run_name(name: str) -> Optional[tuple]:
    """run_name's inverse: (setting, seed), or None for a name it cannot have made."""
    setting, _, seed = name.rpartition("-seed") if "-seed" in name else (name, "", "0")
    return (setting, int(seed)) if seed.isdigit() else None


def read_json(path: str, empty=None):
    """A results file, or `empty` when there is none yet."""
    if not os.path.isfile(path):
        return empty
    with open(path) as handle:
        return json.load(handle)


def write_json(path: str, value):
    """A results file, written whole and atomically: a stop never leaves half of it."""
    with atomic_write(path, "w") as handle:
        json.dump(value, handle, indent=1)


def read_results(out_dir: str) -> list:
    """OUT/results.json: one record per measured thing."""
    return read_json(os.path.join(out_dir, "results.json"), [])


def write_results(out_dir: str, results: list):
    write_json(os.path.join(out_dir, "results.json"), results)


def provenance() -> dict:
    """The machine (CPU model and flags, or GPU), the project's code and the date of a measurement. The code is
    the git commit this process started with (CODE_AT_START), not the one checked out when the record is written:
    a commit made while a run trained did not change what it ran."""
    return dict(machine=devices.machine(), code=CODE_AT_START, date=datetime.date.today().isoformat())


def save_part(out_dir: str, key: str, value) -> dict:
    """Add one measured part to OUT/results.json (a dictionary of parts), with its provenance under "measured"."""
    results = read_json(os.path.join(out_dir, "results.json"), {})
    results[key] = value
    results.setdefault("measured", {})[key] = provenance()
    write_json(os.path.join(out_dir, "results.json"), results)
    return results


# --------------------------------------------------------------------------------------------- the judge

def extra_average_half_life(generator: str) -> Optional[int]:
    """The half-life in images of a generator named "average_<half-life>" (one of a run's extra_averages), else
    None."""
    match = re.fullmatch(r"average_([1-9][0-9]*)", generator)
    return int(match.group(1)) if match else None


def check_generator(generator: str) -> str:
    """The name, if it is one of GENERATORS or an extra average's "average_<half-life>"; else a ValueError."""
    if generator not in GENERATORS and extra_average_half_life(generator) is None:
        raise ValueError(f"Unknown generator {generator!r}: choose among {', '.join(GENERATORS)}, or "
                         "average_<half-life> for one of the run's extra_averages (e.g. average_20000)")
    return generator


def drawing_mode_text(generator: str, images_seen: Optional[int] = None) -> str:
    """How a generator draws its faces, in words: a record says it beside its scores (an extra average's half-life
    as ramped up after `images_seen`, when the ramp still holds it below its own)."""
    from facegan.config import EMA_RAMP, ramped_half_life

    half_life = extra_average_half_life(check_generator(generator))
    if half_life is None:
        return DRAWING_MODES[generator]
    ramped = ramped_half_life(half_life, images_seen) if images_seen else half_life
    held = (f"; {ramped:,.0f} after these {images_seen:,} images seen, the ramp holding it to {EMA_RAMP:.0%} of them"
            if ramped < half_life else "")
    return (f"a further moving average, half-life {half_life:,} images (extra_averages{held}), batch-norm "
            "statistics of its own faces")


def pick_generator(gan: "DCGAN", generator: str) -> "ReadyGenerator":
    """One of GENERATORS, ready to draw (drawing.ready_generator): "trained" (and "trained_batch_statistics",
    the same network drawn in mode "pad": drawing_mode_of), "average" with the trained generator's batch-norm
    statistics (how every average drew before standing statistics), "average_precise_bn" with its own (the
    default now); or "average_<half-life>", one of the run's extra_averages, with its own."""
    from facegan import drawing

    half_life = extra_average_half_life(check_generator(generator))
    if half_life is not None:
        return drawing.ready_generator(gan, statistics_batches=STANDING_STATISTICS_BATCHES, half_life=half_life)
    statistics_batches = 0 if generator == "average" else STANDING_STATISTICS_BATCHES
    return drawing.ready_generator(gan, use_average=not generator.startswith("trained"),
                                   statistics_batches=statistics_batches)


def drawing_mode_of(generator: str) -> str:
    """The drawing.draw_faces mode a generator of GENERATORS draws its faces in."""
    return "pad" if generator == "trained_batch_statistics" else "independent"


# --------------------------------------------------------------------------------------------- a run's record

def median_speed(losses: Sequence[dict]) -> Optional[float]:
    """The median of a run's logged images per second."""
    speeds = [row["images_per_second"] for row in losses if row.get("images_per_second")]
    return round(float(np.median(speeds)), 2) if speeds else None


def training_seconds(losses: Sequence[dict], steps: int, batch_size: int) -> Optional[float]:
    """Steps × the median seconds per step: the run's training time, unmoved by pauses or a busy machine
    (wall_seconds, beside it in results.json, is the time the run really took)."""
    speed = median_speed(losses)
    return round(steps * batch_size / speed, 1) if speed else None


def run_fields(config: "Config", overrides: dict, generator: str, steps: int) -> dict:
    """What a record says of the run and the generator it scores: the generator and how it draws, the seed, the
    recipe's changes, the images seen, and the training time, speed and precision (from the run's losses.csv)."""
    from facegan import runs

    losses = runs.read_losses(config.outputs.checkpoint_dir)
    return dict(generator=generator, seed=config.training.seed, overrides=overrides,
                drawing_mode=drawing_mode_text(generator), images_seen=steps * config.training.batch_size, steps=steps,
                batch_size=config.training.batch_size,
                train_seconds=training_seconds(losses, steps, config.training.batch_size),
                images_per_second=median_speed(losses),
                precision=devices.resolve_precision(config.networks.precision)[0],
                wall_seconds=round(losses[-1]["seconds"], 1) if losses else None)


def record_scores(out_dir: str, scores: dict, grid: np.ndarray, show: bool, **fields) -> dict:
    """Save a generator's grid as OUT/<run>-<generator>.png and append its record (the fields, the scores, the
    machine and the date) to OUT/results.json."""
    name = f"{run_name(fields['setting'], fields.get('seed', 0))}-{fields['generator']}"
    save_png(grid, os.path.join(out_dir, f"{name}.png"))
    record = dict(**fields, **{metric: round(float(value), 4) for metric, value in scores.items()}, **provenance())
    write_results(out_dir, read_results(out_dir) + [record])
    if show:
        print(f"{name:44s} " + "  ".join(f"{metric} {record[metric]:.4g}" for metric in scores
                                         if metric not in ("generated", "real")))
    return record
