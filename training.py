"""Train the face DCGAN: run, resume, checkpoints, sample grids and the loss log.

    import training
    training.train(image_path="img_align_celeba", steps=20000)

Re-running resumes from the newest checkpoint in `checkpoint_dir` (default `my_net/`): the step count goes on,
and the 100 grid vectors are the same, so grids from before and after a stop line up. Stop at any moment
(Jupyter's stop button, Ctrl-C, SIGTERM): a checkpoint is written before training returns.
"""

import contextlib
import csv
import dataclasses
import datetime
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import warnings
from typing import List, Optional, Sequence, Tuple

import keras
import numpy as np
import tensorflow as tf

import celeba_utils
import dcgan
import devices
import metrics

CONFIG_FILE = "config.json"
LOSS_FILE = "losses.csv"
LOCK_FILE = ".lock"
LOSS_COLUMNS = ("step", "discriminator_loss", "generator_loss", "images_per_second", "seconds")
METRICS_FILE = "metrics.csv"
METRIC_COLUMNS = ("step", "generated", "real", "swd64", "swd32", "swd16", "swd", "fid", "kid")
BEST_FILE = "best.json"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy of a `strategy` setting ("default": the current one device)."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":  # the cluster comes from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (grids, logs, the real checkpoints)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0
                                    and "chief" not in resolver.cluster_spec().as_dict())


def has_gpu() -> bool:
    """Whether TensorFlow trains on GPUs here: the automatic XLA setting turns on for them."""
    return bool(tf.config.list_logical_devices("GPU"))


def setup_devices():
    """Let TensorFlow grow GPU memory as needed instead of taking all of it; say which device trains."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # already initialised in this process: the setting stands as it was
            pass
    return f"{len(gpus)} GPU(s)" if gpus else "CPU"


def grid_file(sample_dir: str, step: int) -> str:
    return os.path.join(sample_dir, f"examples-{step}.png")


# --------------------------------------------------------------------------------------------- checkpoints

def read_config(checkpoint_dir: str) -> Optional[dcgan.Config]:
    """The settings a run saved. A recipe setting missing from them (ema_decay, discriminator_norm, ...) was saved
    by a version before it existed, which trained the plain recipe: it takes its PLAIN_RECIPE value, so older runs
    restore into the networks they trained, not into today's defaults."""
    path = os.path.join(checkpoint_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as handle:
            return dcgan.Config.from_dict({**dcgan.PLAIN_RECIPE, **json.load(handle)})
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a valid run configuration ({error}); move it away or fix it") from None


def write_config(config: dcgan.Config):
    with celeba_utils.atomic_write(os.path.join(config.checkpoint_dir, CONFIG_FILE), "w") as handle:
        handle.write(config.to_json())


def config_differences(saved: dcgan.Config, requested: dcgan.Config, fields) -> List[Tuple[str, object, object]]:
    """(name, saved value, requested value) of each of the fields where the two configs differ."""
    return [(name, getattr(saved, name), getattr(requested, name))
            for name in fields if getattr(saved, name) != getattr(requested, name)]


def check_same_networks(saved: dcgan.Config, requested: dcgan.Config, checkpoint_dir: str):
    differences = [f"{name} {old} (saved) vs {new} (requested)"
                   for name, old, new in config_differences(saved, requested, dcgan.NETWORK_FIELDS)]
    if differences:
        raise ValueError(f"The checkpoint in {checkpoint_dir} is of other networks: {'; '.join(differences)}. "
                         f"It is left untouched. Use the saved settings to resume, another checkpoint_dir for new "
                         f"networks, or fresh=True to archive it and start again.")


def warn_of_recipe_changes(saved: dcgan.Config, requested: dcgan.Config, checkpoint_dir: str):
    """A resumed run trains on with the requested recipe (learning rates, augmentation, ...), which may be a
    choice; say so, since a default that changed since the run began changes it too."""
    recipe = tuple(dcgan.PLAIN_RECIPE) + ("batch_size",)
    changes = [f"{name} {old} → {new}" for name, old, new in config_differences(saved, requested, recipe)]
    if changes:
        warnings.warn(f"Resuming the run in {checkpoint_dir} with another training recipe than it began with: "
                      f"{'; '.join(changes)}. To keep the run's own, pass those settings as they were "
                      f"(training.read_config('{checkpoint_dir}') holds them).", stacklevel=3)


def checkpoint_manager(gan: dcgan.DCGAN, config: dcgan.Config) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(gan.checkpoint(), config.checkpoint_dir, max_to_keep=config.keep_checkpoints,
                                      checkpoint_name="ckpt")


def list_checkpoints(checkpoint_dir: str) -> List[Tuple[int, str]]:
    """(step, path prefix) of every checkpoint in the folder, oldest first, found by their index files (so a
    lost or stale `checkpoint` state file hides none)."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(checkpoint_dir), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[:-len(".index")]))
    return sorted(found)


def restore(gan: dcgan.DCGAN, checkpoint_dir: str, step: Optional[int] = None) -> Optional[str]:
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
            gan.checkpoint().restore(path).assert_existing_objects_matched()
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


def weights_are_finite(gan: dcgan.DCGAN) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(variable))) for variable in gan.generator.weights +
               gan.discriminator.weights)


def load_gan(checkpoint_dir: str = "my_net", step: Optional[int] = None, **overrides):
    """Rebuild the networks from checkpoint_dir/config.json and restore them, the moving average with batch-norm
    statistics of its own (DCGAN.refresh_average_statistics): (gan, config)."""
    config = read_config(checkpoint_dir)
    if config is None:
        raise FileNotFoundError(f"No {CONFIG_FILE} in {os.path.abspath(checkpoint_dir)}: train first "
                                "(run gan_new.ipynb), or point checkpoint_dir at a training run's folder")
    config = dataclasses.replace(config, checkpoint_dir=checkpoint_dir, **overrides)
    gan = dcgan.DCGAN(config)
    if restore(gan, checkpoint_dir, step) is None:
        raise FileNotFoundError(f"No checkpoint in {os.path.abspath(checkpoint_dir)}: train first (run gan_new.ipynb)")
    gan.refresh_average_statistics()
    return gan, config


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
        with celeba_utils.atomic_write(os.path.join(folder, ".write-test")) as handle:
            handle.write(b"ok")
        os.remove(os.path.join(folder, ".write-test"))
    except OSError as error:
        raise OSError(f"{setting} {folder} cannot be written ({error.strerror or error}): choose a writable "
                      f"folder for {setting}") from None
    for leftover in glob.glob(os.path.join(glob.escape(folder), ".*.tmp")) + \
            glob.glob(os.path.join(glob.escape(folder), "ckpt-*_temp")):
        shutil.rmtree(leftover, ignore_errors=True) if os.path.isdir(leftover) else os.remove(leftover)


@contextlib.contextmanager
def _reporting_write_errors(what: str, folder: str):
    """Turn a failed write (disk full, folder gone read-only) into one clear error; earlier files stay intact."""
    try:
        yield
    except (OSError, tf.errors.OpError) as error:
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0][:200]
        raise OSError(f"Could not write {what} in {folder}: {reason}. What was saved before is intact; free "
                      "space or fix the folder's permissions, then run again to resume.") from None


# --------------------------------------------------------------------------------------------- stopping cleanly

class _Interrupts:
    """Stops training cleanly on SIGINT (Ctrl-C, Jupyter's stop button) and SIGTERM: the first request ends
    training after the step under way, once its losses, grid and checkpoint are written; a second request
    interrupts at once. While a checkpoint or grid is being written, requests wait, so no file is cut in half."""

    def __init__(self):
        self.requested = False
        self.held = False
        self.pending = False
        self.previous = {}

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested = True
            print(f"stop requested (signal {signum}): finishing this step and saving a checkpoint", flush=True)
        elif self.held:
            self.pending = True
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    @contextlib.contextmanager
    def hold(self):
        self.held = True
        try:
            yield
        finally:
            self.held = False
            if self.pending:
                self.pending = False
                raise KeyboardInterrupt("stop requested while saving")


class StopOnRequest(keras.callbacks.Callback):
    """Ends fit() after a step once a stop was requested; it runs after the other callbacks of that step."""

    def __init__(self, interrupts: _Interrupts):
        super().__init__()
        self.interrupts = interrupts

    def on_train_batch_end(self, batch, logs=None):
        if self.interrupts.requested:
            self.model.stop_training = True


# --------------------------------------------------------------------------------------------- callbacks

def reached(previous: int, step: int, every: int, offset: int = 0) -> bool:
    """Whether a step s with (s − offset) a multiple of `every` lies in (previous, step]: with several steps per
    call (steps_per_execution), a grid or checkpoint falls due at the first call end past its step."""
    return (step - offset) // every > (previous - offset) // every


class Periodic(keras.callbacks.Callback):
    """Calls `due(step, logs)` after each call into TensorFlow that reached a step s with (s − offset) a
    multiple of `every`."""

    def __init__(self, every: int, start_step: int, offset: int = 0):
        super().__init__()
        self.every, self.offset, self.previous = every, offset, start_step

    def on_train_batch_end(self, batch, logs=None):
        step, previous, self.previous = int(logs["step"]), self.previous, int(logs["step"])
        if reached(previous, step, self.every, self.offset):
            self.due(step, logs)

    def due(self, step: int, logs: dict):
        raise NotImplementedError


class StepLog:
    """A CSV with one row per step, flushed row by row. On resume, rows past the restored step (steps a crash
    lost) are dropped first, so the log always matches the network."""

    def __init__(self, path: str, columns: Sequence[str], start_step: int):
        self.columns = columns
        self.kept = read_rows(path, columns, up_to_step=start_step) if start_step else []
        with celeba_utils.atomic_write(path, "w") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([[_cell(row[column]) for column in columns] for row in self.kept])
        self.handle = open(path, "a", newline="")
        self.writer = csv.writer(self.handle)

    def append(self, values: dict):
        self.writer.writerow([_cell(values.get(column)) for column in self.columns])
        self.handle.flush()

    def close(self):
        self.handle.close()


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(int(value)) if isinstance(value, (int, np.integer)) else f"{float(value):.6g}"


class LossLog(keras.callbacks.Callback):
    """Losses and speed per step to checkpoint_dir/losses.csv and TensorBoard; stops on a non-finite loss."""

    def __init__(self, config: dcgan.Config, start_step: int):
        super().__init__()
        self.config = config
        self.diverged_at = None
        self.log = StepLog(os.path.join(config.checkpoint_dir, LOSS_FILE), LOSS_COLUMNS, start_step)
        self.offset = self.log.kept[-1]["seconds"] if self.log.kept else 0.0
        self.summary = tf.summary.create_file_writer(os.path.join(config.checkpoint_dir, "logs"))

    def on_train_begin(self, logs=None):
        self.start = self.last = time.perf_counter()
        self.last_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        d_loss, g_loss = float(logs["discriminator_loss"]), float(logs["generator_loss"])
        now = time.perf_counter()
        steps = step - self.last_step if self.last_step is not None else 1
        self.speed = steps * self.config.batch_size / max(now - self.last, 1e-9)
        self.last, self.last_step = now, step
        self.log.append({"step": step, "discriminator_loss": d_loss, "generator_loss": g_loss,
                         "images_per_second": self.speed, "seconds": self.offset + now - self.start})
        with self.summary.as_default(step=step):
            tf.summary.scalar("discriminator_loss", d_loss)
            tf.summary.scalar("generator_loss", g_loss)
            tf.summary.scalar("images_per_second", self.speed)
        if not (np.isfinite(d_loss) and np.isfinite(g_loss)):
            self.diverged_at = step
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.log.close()
        self.summary.flush()


class BestCheckpoint:
    """The network with the lowest value of a metric so far, in checkpoint_dir/best-<metric>/ with its
    config.json and best.json (metric, value, step): load it with load_gan("my_net/best-swd")."""

    def __init__(self, gan: dcgan.DCGAN, config: dcgan.Config, metric: str):
        self.folder = os.path.join(config.checkpoint_dir, f"best-{metric}")
        self.config = dataclasses.replace(config, checkpoint_dir=self.folder)
        self.metric = metric
        self.manager = tf.train.CheckpointManager(gan.checkpoint(), self.folder, max_to_keep=1,
                                                  checkpoint_name="ckpt")
        record = read_best(self.folder)
        self.value = record["value"] if record else float("inf")

    def offer(self, step: int, value: float) -> bool:
        """Keep the network of this step if value is the best yet; say whether it was."""
        if not value < self.value:
            return False
        with _reporting_write_errors(f"the best checkpoint of step {step}", self.folder):
            path = self.manager.save(checkpoint_number=step)
            write_config(self.config)
            with celeba_utils.atomic_write(os.path.join(self.folder, BEST_FILE), "w") as handle:
                json.dump({"metric": self.metric, "value": value, "step": step, "checkpoint": path}, handle)
        self.value = value
        return True


def read_best(folder: str) -> Optional[dict]:
    path = os.path.join(folder, BEST_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


class MetricsTracker(Periodic):
    """Every metrics_every steps: the chosen metrics of metric_samples faces (from fixed vectors) against as
    many training faces, to checkpoint_dir/metrics.csv and TensorBoard, and the best network kept."""

    def __init__(self, config: dcgan.Config, real_images: np.ndarray, start_step: int, best: BestCheckpoint,
                 interrupts: _Interrupts):
        super().__init__(config.metrics_every, start_step)
        self.config = config
        self.real = metrics.real_sample(real_images, config.metric_samples, config.seed)
        self.latents = tf.random.Generator.from_seed(config.seed + 2).normal((config.metric_samples, config.z_dim))
        self.log = StepLog(os.path.join(config.checkpoint_dir, METRICS_FILE), METRIC_COLUMNS, start_step)
        self.best = best
        self.interrupts = interrupts
        self.summary = tf.summary.create_file_writer(os.path.join(config.checkpoint_dir, "logs"))

    def measure(self, step: int) -> dict:
        self.model.refresh_average_statistics()
        generated = celeba_utils.to_uint8(dcgan.generate(self.model.sampling_generator, self.latents))
        values = metrics.evaluate(generated, self.real, self.config.metrics, self.config.cache_dir, self.config.seed)
        values["step"] = step
        self.log.append(values)
        with self.summary.as_default(step=step):
            for name in METRIC_COLUMNS[3:]:
                if name in values:
                    tf.summary.scalar(f"metrics/{name}", values[name])
        with self.interrupts.hold():
            self.best.offer(step, values[self.config.best_metric])
        return values

    def due(self, step: int, logs: dict):
        if weights_are_finite(self.model):
            self.measure(step)

    def on_train_end(self, logs=None):
        self.log.close()
        self.summary.flush()


class SampleGrids(Periodic):
    """The 10×10 grid of the 100 fixed vectors as sample_dir/examples-{step}.png at step 1 and every
    sample_every steps after it, shown in the notebook as it is written."""

    def __init__(self, config: dcgan.Config, start_step: int, interrupts: _Interrupts, show: bool):
        super().__init__(config.sample_every, start_step, offset=1)
        self.config = config
        self.interrupts = interrupts
        self.display = None
        self.show = show
        self.last_written = None

    def write(self, step: int) -> str:
        self.model.refresh_average_statistics()
        images = dcgan.generate(self.model.sampling_generator, self.model.grid_latents)
        path = grid_file(self.config.sample_dir, step)
        with self.interrupts.hold(), _reporting_write_errors(f"the sample grid {os.path.basename(path)}",
                                                             self.config.sample_dir):
            celeba_utils.save_png(celeba_utils.image_grid(images, 10, 10), path)
        self.last_written = step
        if self.show:
            self._show(path)
        return path

    def _show(self, path: str):
        try:
            from IPython import get_ipython
            from IPython.display import Image, display
        except ImportError:
            return
        if get_ipython() is None:
            return
        if self.display is None:
            self.display = display(Image(filename=path), display_id=True)
        else:
            self.display.update(Image(filename=path))

    def due(self, step: int, logs: dict):
        self.write(step)


class Checkpoints(Periodic):
    """A checkpoint every checkpoint_every steps (the last few kept by tf.train.CheckpointManager)."""

    def __init__(self, manager: tf.train.CheckpointManager, config: dcgan.Config, start_step: int,
                 interrupts: _Interrupts):
        super().__init__(config.checkpoint_every, start_step)
        self.manager = manager
        self.config = config
        self.interrupts = interrupts
        self.diverged_at = None

    def save(self, step: int) -> Optional[str]:
        """Save unless a weight is not finite (a diverged network never replaces a good checkpoint)."""
        if not weights_are_finite(self.model):
            self.model.stop_training = True
            self.diverged_at = step
            return None
        with self.interrupts.hold(), _reporting_write_errors(f"the checkpoint of step {step}",
                                                             self.config.checkpoint_dir):
            return self.manager.save(checkpoint_number=step)

    def due(self, step: int, logs: dict):
        if np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"])):
            self.save(step)


class Progress(keras.callbacks.Callback):
    """A progress bar with step, losses and images/s."""

    def __init__(self, config: dcgan.Config, start_step: int, losses: LossLog, show: bool):
        super().__init__()
        from tqdm.auto import tqdm
        self.bar = tqdm(total=config.steps, initial=start_step, unit="step", disable=not show, mininterval=0.5)
        self.losses = losses

    def on_train_batch_end(self, batch, logs=None):
        self.bar.set_postfix(d_loss=f"{float(logs['discriminator_loss']):.3f}",
                             g_loss=f"{float(logs['generator_loss']):.3f}", img_s=f"{self.losses.speed:.1f}",
                             refresh=False)
        self.bar.update(int(logs["step"]) - self.bar.n)

    def on_train_end(self, logs=None):
        self.bar.close()


# --------------------------------------------------------------------------------------------- the run

@dataclasses.dataclass
class Run:
    config: dcgan.Config
    start_step: int
    step: int
    stopped: bool  # True when the user stopped it before `steps`
    checkpoint: Optional[str]
    grid: Optional[str]


def load_training_faces(config: dcgan.Config, progress: bool = True) -> celeba_utils.Faces:
    faces = celeba_utils.load_faces(config.image_path, config.image_size, config.crop_size, config.cache_dir,
                                    progress)
    if config.partition is not None or config.attributes:
        faces = celeba_utils.select(faces, config.image_path, config.partition, config.attributes)
    return faces


def train(config: Optional[dcgan.Config] = None, show: bool = True, faces: Optional[celeba_utils.Faces] = None,
          callbacks: Sequence[keras.callbacks.Callback] = (), **settings) -> Run:
    """Train toward config.steps, resuming from checkpoint_dir; settings override config's fields by name.
    `faces` skips loading the data (the notebook loads it once to show it); `callbacks` run after each step."""
    config = dataclasses.replace(config or dcgan.Config(), **settings)  # bad settings: ValueError, before any work
    device = setup_devices()
    strategy = make_strategy(config.strategy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size ({config.batch_size}) must divide evenly among the "
                         f"{strategy.num_replicas_in_sync} devices of strategy {config.strategy!r}")
    if strategy.num_replicas_in_sync > 1:
        device = f"{strategy.num_replicas_in_sync} devices ({config.strategy})"
    restore_dir = config.checkpoint_dir
    if not is_chief(strategy):  # other workers write into a scratch folder: the chief's files are the run's
        scratch = tempfile.mkdtemp(prefix="dcgan-worker-")
        config = dataclasses.replace(config, checkpoint_dir=os.path.join(scratch, "my_net"),
                                     sample_dir=os.path.join(scratch, "imgs"))
    prepare_folder(config.checkpoint_dir, "checkpoint_dir")
    with RunLock(config.checkpoint_dir):
        prepare_folder(config.sample_dir, "sample_dir")
        return _train_locked(config, show, faces, callbacks, device, strategy, restore_dir)


def _train_locked(config: dcgan.Config, show: bool, faces: Optional[celeba_utils.Faces],
                  extra_callbacks: Sequence[keras.callbacks.Callback], device: str,
                  strategy: tf.distribute.Strategy, restore_dir: str) -> Run:
    saved = read_config(restore_dir)
    has_checkpoint = bool(list_checkpoints(restore_dir))
    if config.fresh:
        for folder in (config.checkpoint_dir, config.sample_dir):
            moved = archive(folder)
            if moved and show:
                print(f"fresh start: moved the earlier run to {moved}")
        saved, has_checkpoint = None, False
    if saved is not None and has_checkpoint:
        check_same_networks(saved, config, restore_dir)
        warn_of_recipe_changes(saved, config, restore_dir)
    if faces is None:
        faces = load_training_faces(config, progress=show)

    with strategy.scope():
        gan = dcgan.DCGAN(config)
        restored = restore(gan, restore_dir) if has_checkpoint else None
        if restored is None:  # true moving statistics from the start: grids in inference mode are right at step 1
            dcgan.recompute_batch_norm_statistics(gan.generator, config.batch_size, batches=1, seed=config.seed)
            if gan.ema_generator is not None:  # the average starts as a copy of the generator
                gan.ema_generator.set_weights(gan.generator.get_weights())
        resident = config.resident_data is not False  # None: automatic, on (measured faster on CPUs and GPUs)
        if resident and not gan.keep_on_device(faces.images):
            resident = False
            if show:
                print(f"the {len(faces.images)} faces do not fit on the device: streaming them from memory instead")
    start_step = int(gan.step.numpy())
    # the data order continues anew after a resume, reproducible from the seed and the step
    dataset = celeba_utils.make_dataset(faces.images, config.batch_size, seed=config.seed + start_step,
                                        indices_only=resident)
    write_config(config)
    if show:
        where = f"resuming from {restored} at step {start_step}" if restored else "starting at step 0"
        precision, reason = devices.resolve_precision(config.precision)
        print(f"{len(faces.images)} faces from {config.image_path}; training on {device} in {precision} "
              f"({config.precision}: {reason}), {where}, toward step {config.steps}")
    if start_step >= config.steps:
        return Run(config, start_step, start_step, False, restored, None)

    jit_compile = config.jit_compile if config.jit_compile is not None else has_gpu()
    with strategy.scope():
        gan.compile(jit_compile=jit_compile, steps_per_execution=config.steps_per_execution)
    manager = checkpoint_manager(gan, config)
    with _Interrupts() as interrupts:
        losses = LossLog(config, start_step)
        grids = SampleGrids(config, start_step, interrupts, show)
        checkpoints = Checkpoints(manager, config, start_step, interrupts)
        callbacks = [losses, grids, checkpoints, Progress(config, start_step, losses, show)]
        if config.metrics_every:
            best = BestCheckpoint(gan, config, config.best_metric)
            callbacks.append(MetricsTracker(config, faces.images, start_step, best, interrupts))
        callbacks += [*extra_callbacks, StopOnRequest(interrupts)]
        try:
            gan.fit(dataset, epochs=1, steps_per_epoch=config.steps - start_step, verbose=0, callbacks=callbacks,
                    shuffle=False)
        except KeyboardInterrupt:  # a second stop request, or a stop before training began
            interrupts.requested = True
            for callback in callbacks:  # fit() does not end its callbacks when interrupted
                with contextlib.suppress(Exception):
                    callback.on_train_end()
        stopped = interrupts.requested
        step = int(gan.step.numpy())
        path = None
        if step > start_step and losses.diverged_at is None:
            path = manager.latest_checkpoint
            if not (path and path.endswith(f"ckpt-{step}")):
                path = checkpoints.save(step)
        diverged_at = losses.diverged_at or checkpoints.diverged_at
        if diverged_at is not None:
            last_good = list_checkpoints(config.checkpoint_dir)
            raise FloatingPointError(
                f"Training diverged: a loss or weight was not finite at step {diverged_at}. Nothing was saved from "
                f"it; the last good checkpoint is {last_good[-1][1] if last_good else 'none'}. Lower the learning "
                "rates or check the data, then run again to resume from that checkpoint.")
        grid = grid_file(config.sample_dir, step)
        if step > start_step and grids.last_written != step:
            grid = grids.write(step)
    if show:
        print(f"{'stopped' if stopped else 'finished'} at step {step}; checkpoint {path}; grid {grid}")
    return Run(config, start_step, step, stopped, path, grid)


# --------------------------------------------------------------------------------------------- looking at a run

def read_rows(path: str, columns: Sequence[str], up_to_step: Optional[int] = None) -> List[dict]:
    """The rows of a step log as dicts of numbers (empty cells: NaN), a half-written last line passed over."""
    rows = []
    if not os.path.isfile(path):
        return rows
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                values = {column: float(row[column]) if row[column] != "" else float("nan") for column in columns}
                values["step"] = int(values["step"])
            except (TypeError, ValueError, KeyError):
                continue
            if up_to_step is None or values["step"] <= up_to_step:
                rows.append(values)
    return rows


def read_losses(checkpoint_dir: str, up_to_step: Optional[int] = None) -> List[dict]:
    return read_rows(os.path.join(checkpoint_dir, LOSS_FILE), LOSS_COLUMNS, up_to_step)


def read_metrics(checkpoint_dir: str, up_to_step: Optional[int] = None) -> List[dict]:
    return read_rows(os.path.join(checkpoint_dir, METRICS_FILE), METRIC_COLUMNS, up_to_step)


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
        for name in ("swd", "fid", "kid"):
            values = np.array([row[name] for row in scores])
            if np.isfinite(values).any():
                metrics_axes.plot(steps, values, marker="o", label=name.upper())
        metrics_axes.set_xlabel("step")
        metrics_axes.set_ylabel("lower is better")
        metrics_axes.set_title(f"{int(scores[-1]['generated'])} generated vs {int(scores[-1]['real'])} real faces")
        metrics_axes.legend()
        metrics_axes.grid(alpha=0.3)
    return figure
