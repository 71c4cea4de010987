"""Train the face DCGAN: run, resume, checkpoints, sample grids and the loss log.

    from facegan import training
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
import shutil
import signal
import socket
import tempfile
import threading
import time
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

import celeba_utils
from facegan.config import Config
from facegan import networks
from facegan.gan import DCGAN
from facegan import devices
from facegan import drawing
from facegan.metrics import registry, sampler
from facegan import runs

LOCK_FILE = ".lock"


def weights_are_finite(gan: DCGAN) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(variable))) for variable in gan.generator.weights +
               gan.discriminator.weights)


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
        self.kept = runs.read_rows(path, columns, up_to_step=start_step) if start_step else []
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

    def __init__(self, config: Config, start_step: int):
        super().__init__()
        self.config = config
        self.diverged_at = None
        self.log = StepLog(os.path.join(config.outputs.checkpoint_dir, runs.LOSS_FILE), runs.LOSS_COLUMNS, start_step)
        self.offset = self.log.kept[-1]["seconds"] if self.log.kept else 0.0
        self.summary = tf.summary.create_file_writer(os.path.join(config.outputs.checkpoint_dir, "logs"))

    def on_train_begin(self, logs=None):
        self.start = self.last = time.perf_counter()
        self.last_step = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        d_loss, g_loss = float(logs["discriminator_loss"]), float(logs["generator_loss"])
        now = time.perf_counter()
        steps = step - self.last_step if self.last_step is not None else 1
        self.speed = steps * self.config.training.batch_size / max(now - self.last, 1e-9)
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
    config.json and best.json (metric, value, step): load it with runs.load_gan("my_net/best-swd")."""

    def __init__(self, gan: DCGAN, config: Config, metric: str):
        self.folder = os.path.join(config.outputs.checkpoint_dir, f"best-{metric}")
        self.config = config.replace(checkpoint_dir=self.folder)
        self.metric = metric
        self.manager = tf.train.CheckpointManager(gan.checkpoint(), self.folder, max_to_keep=1,
                                                  checkpoint_name="ckpt")
        record = runs.read_best(self.folder)
        self.value = record["value"] if record else float("inf")

    def offer(self, step: int, value: float) -> bool:
        """Keep the network of this step if value is the best yet; say whether it was."""
        if not value < self.value:
            return False
        with _reporting_write_errors(f"the best checkpoint of step {step}", self.folder):
            path = self.manager.save(checkpoint_number=step)
            runs.write_config(self.config)
            with celeba_utils.atomic_write(os.path.join(self.folder, runs.BEST_FILE), "w") as handle:
                json.dump({"metric": self.metric, "value": value, "step": step, "checkpoint": path}, handle)
        self.value = value
        return True


class MetricsTracker(Periodic):
    """Every metrics_every steps: the chosen metrics of the faces of seeds 0 … metric_samples − 1 against as
    many training faces (sampler.score_generator, as score.py scores a checkpoint), to checkpoint_dir/metrics.csv
    and TensorBoard, and the best network kept."""

    def __init__(self, config: Config, real_images: np.ndarray, start_step: int, best: BestCheckpoint,
                 interrupts: _Interrupts):
        super().__init__(config.quality.metrics_every, start_step)
        self.config = config
        self.real = real_images
        self.columns = ("step",) + registry.columns(config.quality.metrics, config.networks.image_size)
        self.log = StepLog(os.path.join(config.outputs.checkpoint_dir, runs.METRICS_FILE), self.columns, start_step)
        self.best = best
        self.interrupts = interrupts
        self.summary = tf.summary.create_file_writer(os.path.join(config.outputs.checkpoint_dir, "logs"))

    def measure(self, step: int) -> dict:
        values = sampler.score_generator(drawing.ready_generator(self.model), self.real, self.config.quality.metrics,
                                         self.config.quality.metric_samples, self.config.training.seed,
                                         self.config.data.cache_dir)
        values["step"] = step
        self.log.append(values)
        with self.summary.as_default(step=step):
            for name in self.columns[3:]:
                tf.summary.scalar(f"metrics/{name}", values[name])
        with self.interrupts.hold():
            self.best.offer(step, values[self.config.quality.best_metric])
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

    def __init__(self, config: Config, start_step: int, interrupts: _Interrupts, show: bool):
        super().__init__(config.outputs.sample_every, start_step, offset=1)
        self.config = config
        self.interrupts = interrupts
        self.display = None
        self.show = show
        self.last_written = None

    def write(self, step: int) -> str:
        generator = drawing.ready_generator(self.model)
        images = drawing.draw_faces(generator, generator.grid_latents)
        path = runs.grid_file(self.config.outputs.sample_dir, step)
        with self.interrupts.hold(), _reporting_write_errors(f"the sample grid {os.path.basename(path)}",
                                                             self.config.outputs.sample_dir):
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

    def __init__(self, manager: tf.train.CheckpointManager, config: Config, start_step: int,
                 interrupts: _Interrupts):
        super().__init__(config.outputs.checkpoint_every, start_step)
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
                                                             self.config.outputs.checkpoint_dir):
            return self.manager.save(checkpoint_number=step)

    def due(self, step: int, logs: dict):
        if np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"])):
            self.save(step)


class Progress(keras.callbacks.Callback):
    """A progress bar with step, losses and images/s."""

    def __init__(self, config: Config, start_step: int, losses: LossLog, show: bool):
        super().__init__()
        from tqdm.auto import tqdm
        self.bar = tqdm(total=config.training.steps, initial=start_step, unit="step", disable=not show, mininterval=0.5)
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
    config: Config
    start_step: int
    step: int
    stopped: bool  # True when the user stopped it before `steps`
    checkpoint: Optional[str]
    grid: Optional[str]


def load_training_faces(config: Config, progress: bool = True) -> celeba_utils.Faces:
    faces = celeba_utils.load_faces(config.data.image_path, config.networks.image_size, config.data.crop_size,
                                    config.data.cache_dir, progress, config.data.align_faces)
    if config.data.partition is not None or config.data.attributes:
        faces = celeba_utils.select(faces, config.data.image_path, config.data.partition, config.data.attributes)
    return faces


def train(config: Optional[Config] = None, show: bool = True, faces: Optional[celeba_utils.Faces] = None,
          callbacks: Sequence[keras.callbacks.Callback] = (), **settings) -> Run:
    """Train toward config.training.steps, resuming from checkpoint_dir; settings override config's fields by name.
    `faces` skips loading the data (the notebook loads it once to show it); `callbacks` run after each step."""
    config = (config or Config()).replace(**settings)  # bad settings: ValueError, before any work
    registry.check_names(config.quality.metrics)
    device = devices.setup_devices()
    strategy = devices.make_strategy(config.devices.strategy)
    if config.training.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size ({config.training.batch_size}) must divide evenly among the "
                         f"{strategy.num_replicas_in_sync} devices of strategy {config.devices.strategy!r}")
    if strategy.num_replicas_in_sync > 1:
        device = f"{strategy.num_replicas_in_sync} devices ({config.devices.strategy})"
    restore_dir = config.outputs.checkpoint_dir
    if not devices.is_chief(strategy):  # other workers write into a scratch folder: the chief's files are the run's
        scratch = tempfile.mkdtemp(prefix="dcgan-worker-")
        config = config.replace(checkpoint_dir=os.path.join(scratch, "my_net"),
                                     sample_dir=os.path.join(scratch, "imgs"))
    prepare_folder(config.outputs.checkpoint_dir, "checkpoint_dir")
    with RunLock(config.outputs.checkpoint_dir):
        prepare_folder(config.outputs.sample_dir, "sample_dir")
        return _train_locked(config, show, faces, callbacks, device, strategy, restore_dir)


def _train_locked(config: Config, show: bool, faces: Optional[celeba_utils.Faces],
                  extra_callbacks: Sequence[keras.callbacks.Callback], device: str,
                  strategy: tf.distribute.Strategy, restore_dir: str) -> Run:
    saved = runs.read_config(restore_dir)
    has_checkpoint = bool(runs.list_checkpoints(restore_dir))
    if config.outputs.fresh:
        for folder in (config.outputs.checkpoint_dir, config.outputs.sample_dir):
            moved = archive(folder)
            if moved and show:
                print(f"fresh start: moved the earlier run to {moved}")
        saved, has_checkpoint = None, False
    if saved is not None and has_checkpoint:
        runs.check_same_networks(saved, config, restore_dir)
        runs.warn_of_recipe_changes(saved, config, restore_dir)
    if faces is None:
        faces = load_training_faces(config, progress=show)

    with strategy.scope():
        gan = DCGAN.from_config(config)
        restored = runs.restore(gan, restore_dir) if has_checkpoint else None
        if restored is None:  # true moving statistics from the start: grids in inference mode are right at step 1
            networks.recompute_batch_norm_statistics(gan.generator, config.training.batch_size, batches=1,
                                                     seed=config.training.seed)
            if gan.ema_generator is not None:  # the average starts as a copy of the generator
                gan.ema_generator.set_weights(gan.generator.get_weights())
        resident = config.devices.resident_data is not False  # None: automatic, on (measured faster on CPUs and GPUs)
        if resident and not gan.keep_on_device(faces.images):
            resident = False
            if show:
                print(f"the {len(faces.images)} faces do not fit on the device: streaming them from memory instead")
    start_step = int(gan.step.numpy())
    # the data order continues anew after a resume, reproducible from the seed and the step
    dataset = celeba_utils.make_dataset(faces.images, config.training.batch_size,
                                        seed=config.training.seed + start_step, indices_only=resident)
    runs.write_config(config)
    runs.record_start(config, start_step)
    if show:
        where = f"resuming from {restored} at step {start_step}" if restored else "starting at step 0"
        precision, reason = devices.resolve_precision(config.networks.precision)
        print(f"{len(faces.images)} faces from {config.data.image_path}; training on {device} in {precision} "
              f"({config.networks.precision}: {reason}), {where}, toward step {config.training.steps}")
    if start_step >= config.training.steps:
        return Run(config, start_step, start_step, False, restored, None)

    jit_compile = config.devices.jit_compile if config.devices.jit_compile is not None else devices.has_gpu()
    with strategy.scope():
        gan.compile(jit_compile=jit_compile, steps_per_execution=config.devices.steps_per_execution)
    manager = runs.checkpoint_manager(gan, config)
    with _Interrupts() as interrupts:
        losses = LossLog(config, start_step)
        grids = SampleGrids(config, start_step, interrupts, show)
        checkpoints = Checkpoints(manager, config, start_step, interrupts)
        callbacks = [losses, grids, checkpoints, Progress(config, start_step, losses, show)]
        if config.quality.metrics_every:
            best = BestCheckpoint(gan, config, config.quality.best_metric)
            callbacks.append(MetricsTracker(config, faces.images, start_step, best, interrupts))
        callbacks += [*extra_callbacks, StopOnRequest(interrupts)]
        try:
            gan.fit(dataset, epochs=1, steps_per_epoch=config.training.steps - start_step, verbose=0,
                    callbacks=callbacks, shuffle=False)
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
            last_good = runs.list_checkpoints(config.outputs.checkpoint_dir)
            raise FloatingPointError(
                f"Training diverged: a loss or weight was not finite at step {diverged_at}. Nothing was saved from "
                f"it; the last good checkpoint is {last_good[-1][1] if last_good else 'none'}. Lower the learning "
                "rates or check the data, then run again to resume from that checkpoint.")
        grid = runs.grid_file(config.outputs.sample_dir, step)
        if step > start_step and grids.last_written != step:
            grid = grids.write(step)
    if show:
        print(f"{'stopped' if stopped else 'finished'} at step {step}; checkpoint {path}; grid {grid}")
    return Run(config, start_step, step, stopped, path, grid)
