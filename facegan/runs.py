"""Saved runs: what a training run leaves in its folder, and how to read it back without the training loop.

    gan, config = runs.load_gan("my_net")   # rebuilt from my_net/config.json, newest checkpoint restored

A run's folder (`checkpoint_dir`, default `my_net/`) holds `config.json` (every setting, as the run last started),
`starts.jsonl` (one line per start or resume: the time, the step, the machine, the project's code and the settings
it started with),
the checkpoints `ckpt-N.*` (tf.train.CheckpointManager), `losses.csv`, `metrics.csv` when it measured quality,
`best-<metric>/` and TensorBoard's `logs/`. Sample grids are `imgs/examples-{step}.png`. The folder is owned by one
training run at a time (RunLock), checked writable and cleared of what a killed run half wrote (prepare_folder),
and moved aside whole for a fresh start (archive).
"""

import contextlib
import csv
import datetime
import fcntl
import glob
import json
import os
import re
import shutil
import socket
import warnings
from typing import List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from facegan.images import atomic_write
from facegan.config import PLAIN_RECIPE, Config, checkpoint_shape, flatten
from facegan.gan import DCGAN
from facegan import devices

CONFIG_FILE = "config.json"
STARTS_FILE = "starts.jsonl"
LOSS_FILE = "losses.csv"
LOSS_COLUMNS = ("step", "discriminator_loss", "generator_loss", "images_per_second", "seconds")
METRICS_FILE = "metrics.csv"
BEST_FILE = "best.json"
LOCK_FILE = ".lock"  # held by the training run that owns the folder (RunLock)


def grid_file(sample_dir: str, step: int) -> str:
    return os.path.join(sample_dir, f"examples-{step}.png")


# --------------------------------------------------------------------------------------------- settings

def read_config(checkpoint_dir: str) -> Optional[Config]:
    """The settings a run saved: in their groups, or one flat dictionary as versions before the groups wrote them.
    A recipe setting missing from them (ema_decay, discriminator_norm, ...) was saved by a version before it
    existed, which trained the plain recipe: it takes its PLAIN_RECIPE value, so older runs restore into the
    networks they trained, not into today's defaults."""
    path = os.path.join(checkpoint_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return Config.from_dict({**PLAIN_RECIPE, **flatten(json.load(handle))})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a valid run configuration ({error}); move it away or fix it") from None


def write_config(config: Config):
    with atomic_write(os.path.join(config.outputs.checkpoint_dir, CONFIG_FILE), "w") as handle:
        handle.write(config.to_json())


def differences(saved: dict, requested: dict) -> List[Tuple[str, object, object]]:
    """(name, saved value, requested value) of each setting where two dictionaries of settings differ."""
    return [(name, saved[name], requested[name]) for name in saved if saved[name] != requested[name]]


def check_same_networks(saved: Config, requested: Config, checkpoint_dir: str):
    changed = differences(checkpoint_shape(saved), checkpoint_shape(requested))
    if changed:
        described = "; ".join(f"{name} {old} (saved) vs {new} (requested)" for name, old, new in changed)
        names = [("ema_decay" if name == "uses_ema" else name) for name, _, _ in changed]  # uses_ema: derived
        saved_values = ", ".join(f"{name}={saved.settings()[name]!r}" for name in names)
        raise ValueError(f"The checkpoint in {checkpoint_dir} is of other networks: {described}. It is left "
                         f"untouched. To resume it, pass {saved_values} (its config.json; a default may have "
                         f"changed since it began); or use another checkpoint_dir for new networks, or fresh=True "
                         f"to archive it and start again.")


def warn_of_recipe_changes(saved: Config, requested: Config, checkpoint_dir: str):
    """A resumed run trains on with the requested recipe (learning rates, augmentation, ...), which may be a
    choice; say so, since a default that changed since the run began changes it too."""
    recipe = tuple(PLAIN_RECIPE) + ("batch_size",)
    changes = [f"{name} {old} → {new}" for name, old, new in differences(
        {name: saved.settings()[name] for name in recipe}, {name: requested.settings()[name] for name in recipe})]
    if changes:
        warnings.warn(f"Resuming the run in {checkpoint_dir} with another training recipe than it began with: "
                      f"{'; '.join(changes)}. To keep the run's own, pass those settings as they were "
                      f"(runs.read_config('{checkpoint_dir}') holds them).", stacklevel=3)


def checkpoint_manager(gan: DCGAN, config: Config) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(gan.checkpoint(), config.outputs.checkpoint_dir,
                                      max_to_keep=config.outputs.keep_checkpoints, checkpoint_name="ckpt")


def list_checkpoints(checkpoint_dir: str) -> List[Tuple[int, str]]:
    """(step, path prefix) of every checkpoint in the folder, oldest first, found by their index files (so a
    lost or stale `checkpoint` state file hides none)."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return sorted(found)


def restore(gan: DCGAN, checkpoint_dir: str, step: Optional[int] = None) -> Optional[str]:
    """Load the newest readable checkpoint (or the one of a given step) into gan; return its path, None if there
    is none. A damaged checkpoint (truncated, half-written) is reported, and the next older one is used."""
    candidates = list_checkpoints(checkpoint_dir)
    if step is not None:
        if step not in dict(candidates):
            steps = ", ".join(str(each) for each, _ in candidates) or "none"
            raise ValueError(f"No checkpoint of step {step} in {checkpoint_dir}; the steps there: {steps}")
        candidates = [(step, dict(candidates)[step])]
    for _, path in reversed(candidates):
        try:
            gan.checkpoint(with_extra_averages=False).restore(path).assert_existing_objects_matched().expect_partial()
            missing = gan.restore_extra_averages(path)
            if missing and step is None:
                warnings.warn(f"The checkpoint {path} holds no average of half-life {', '.join(map(str, missing))} "
                              "images (extra_averages): a run resumed from it keeps them from this step on, "
                              "starting from the trained generator's weights.", stacklevel=2)
            return path
        except Exception as error:  # TensorFlow raises OpError, IndexError, ValueError … for damaged files
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            warnings.warn(f"The checkpoint {path} is damaged ({reason}); trying an older one.")
    if candidates:
        raise ValueError(f"No checkpoint in {checkpoint_dir} could be read into the networks that config.json "
                         f"describes (tried {len(candidates)}): they are damaged, or config.json does not belong to "
                         "them. They are left as they are; restore the run's own config.json, move them away, or "
                         "train with another checkpoint_dir.")
    return None


def record_start(config: Config, step: int):
    """Append this start (or resume) of a run to checkpoint_dir/starts.jsonl: the time, the step it starts at, the
    machine, the project's code (devices.code_version), the precision it computes in and every setting, so a run's
    recipe history stays on disk."""
    record = dict(time=datetime.datetime.now().isoformat(timespec="seconds"), step=step, machine=devices.machine(),
                  code=devices.code_version(), precision=devices.resolve_precision(config.networks.precision)[0],
                  settings=config.to_dict())
    with open(os.path.join(config.outputs.checkpoint_dir, STARTS_FILE), "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_starts(checkpoint_dir: str) -> List[dict]:
    """Every start of a run recorded in its starts.jsonl, oldest first (a half-written last line passed over)."""
    path = os.path.join(checkpoint_dir, STARTS_FILE)
    starts = []
    if os.path.isfile(path):
        with open(path) as handle:
            for line in handle:
                try:
                    starts.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return starts


def load_gan(checkpoint_dir: str = "my_net", step: Optional[int] = None, **overrides):
    """Rebuild the networks from checkpoint_dir/config.json and restore them: (gan, config). To draw faces,
    drawing.load_generator (or drawing.ready_generator(gan)) hands out the network that draws, ready."""
    config = read_config(checkpoint_dir)
    if config is None:
        raise FileNotFoundError(f"No {CONFIG_FILE} in {os.path.abspath(checkpoint_dir)}: train first "
                                "(run gan_new.ipynb), or point checkpoint_dir at a training run's folder")
    config = config.replace(checkpoint_dir=checkpoint_dir, **overrides)
    gan = DCGAN.from_config(config)
    if restore(gan, checkpoint_dir, step) is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.abspath(checkpoint_dir)}: train first (run gan_new.ipynb)")
    return gan, config


def read_best(folder: str) -> Optional[dict]:
    path = os.path.join(folder, BEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


# --------------------------------------------------------------------------------------------- logs

def read_rows(path: str, columns: Optional[Sequence[str]] = None, up_to_step: Optional[int] = None) -> List[dict]:
    """The rows of a step log as dicts of numbers (empty or missing cells: NaN), a half-written last line passed
    over; `columns` default to the file's own."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = columns or reader.fieldnames or ["step"]
        for row in reader:
            try:
                values = {column: float(row[column]) if row.get(column) not in ("", None) else float("nan")
                          for column in columns}
                values["step"] = int(values["step"])
            except (TypeError, ValueError, KeyError):
                continue
            if up_to_step is None or values["step"] <= up_to_step:
                rows.append(values)
    return rows


def read_losses(checkpoint_dir: str, up_to_step: Optional[int] = None) -> List[dict]:
    return read_rows(os.path.join(checkpoint_dir, LOSS_FILE), LOSS_COLUMNS, up_to_step)


def read_metrics(checkpoint_dir: str, up_to_step: Optional[int] = None) -> List[dict]:
    return read_rows(os.path.join(checkpoint_dir, METRICS_FILE), None, up_to_step)


def plot_losses(checkpoint_dir: str = "my_net", smoothing: int = 50):
    """Both losses against the step (thin: raw, thick: running mean over `smoothing` steps) and, when the run
    measured them, its quality metrics beside them."""
    import matplotlib.pyplot as plt

    rows, scores = read_losses(checkpoint_dir), read_metrics(checkpoint_dir)
    figure, axes = plt.subplots(1, 2 if scores else 1, figsize=(14 if scores else 9, 4), squeeze=False)
    losses_axes = axes[0, 0]
    if not rows:
        losses_axes.set_title(f"no losses logged yet in {checkpoint_dir}")
    else:
        steps = np.array([row["step"] for row in rows])
        for column, color in (("discriminator_loss", "tab:blue"), ("generator_loss", "tab:orange")):
            values = np.array([row[column] for row in rows])
            losses_axes.plot(steps, values, color=color, alpha=0.3, linewidth=0.8)
            window = max(1, min(smoothing, len(values)))
            smooth = np.convolve(values, np.ones(window) / window, mode="valid")
            losses_axes.plot(steps[window - 1:], smooth, color=color, label=column.replace("_", " "))
        losses_axes.set_xlabel("step")
        losses_axes.set_ylabel("loss")
        losses_axes.legend()
        losses_axes.grid(alpha=0.3)
    if scores:
        metrics_axes = axes[0, 1]
        steps = [row["step"] for row in scores]
        config = read_config(checkpoint_dir)
        for name in config.quality.metrics if config else []:  # the metrics the run measured, by name
            values = np.array([row.get(name, np.nan) for row in scores])
            if np.isfinite(values).any():
                metrics_axes.plot(steps, values, marker="o", label=name.upper())
        metrics_axes.set_xlabel("step")
        metrics_axes.set_ylabel("lower is better")
        metrics_axes.set_title(f"{int(scores[-1]['generated'])} generated vs {int(scores[-1]['real'])} real faces")
        metrics_axes.legend()
        metrics_axes.grid(alpha=0.3)
    return figure


# --------------------------------------------------------------------------------------------- the folder itself

def archive(folder: str) -> Optional[str]:
    """Move what folder holds (but its placeholder) into folder/archive/<time>/, so a fresh start loses nothing."""
    if not os.path.isdir(folder):
        return None
    entries = [name for name in os.listdir(folder) if name not in ("archive", ".gitkeep", LOCK_FILE)]
    if not entries:
        return None
    target = os.path.join(folder, "archive", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(target, exist_ok=True)
    for name in entries:
        shutil.move(os.path.join(folder, name), os.path.join(target, name))
    return target


# --------------------------------------------------------------------------------------------- one run per folder

class RunLock:
    """One training run per checkpoint folder. The lock is an flock on checkpoint_dir/.lock, which the system
    releases when its process ends in any way (kill -9 included), so a dead run never leaves it stuck."""

    def __init__(self, checkpoint_dir: str):
        self.path = os.path.join(checkpoint_dir, LOCK_FILE)

    def __enter__(self):
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.seek(0)
            owner = self.handle.read().strip() or "another process"
            self.handle.close()
            raise RuntimeError(f"{os.path.dirname(self.path)} is in use by another training run ({owner}). Wait "
                               "for it or stop it, or train into another checkpoint_dir.") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                          f"{datetime.datetime.now().isoformat(timespec='seconds')}")
        self.handle.flush()
        return self

    def __exit__(self, *exc):
        self.handle.truncate(0)
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def prepare_folder(folder: str, setting: str):
    """Make the folder, check that it can be written, and remove what an earlier run that was killed left half
    written (temporary grid and log files, TensorFlow's checkpoint temporaries)."""
    try:
        os.makedirs(folder, exist_ok=True)
        with atomic_write(os.path.join(folder, ".write-test")) as handle:
            handle.write(b"ok")
        os.remove(os.path.join(folder, ".write-test"))
    except OSError as error:
        raise OSError(f"{setting} {folder} cannot be written ({error.strerror or error}): choose a writable "
                      f"folder for {setting}") from None
    for leftover in glob.glob(os.path.join(glob.escape(folder), ".*.tmp")) + \
            glob.glob(os.path.join(glob.escape(folder), "ckpt-*_temp")):
        shutil.rmtree(leftover, ignore_errors=True) if os.path.isdir(leftover) else os.remove(leftover)


@contextlib.contextmanager
def reporting_write_errors(what: str, folder: str):
    """Turn a failed write (disk full, folder gone read-only) into one clear error; earlier files stay intact."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0][:200]
        raise OSError(f"Could not write {what} in {folder}: {reason}. What was saved before is intact; free "
                      "space or fix the folder's permissions, then run again to resume.") from None
