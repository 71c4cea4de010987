"""What training does after each step, as Keras callbacks: the loss log, sample grids, checkpoints, metrics with
the best network kept, and the progress bar. Each callback keeps its own state, so their order does not matter
(training.train puts StopOnRequest last, so a stop comes after the step's files are written)."""

import csv
import json
import os
import time
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from facegan.config import Config
from facegan.gan import DCGAN
from facegan import drawing
from facegan.images import atomic_write, image_grid, save_png
from facegan.metrics import registry, sampler
from facegan import runs
from facegan.stopping import Interrupts


def weights_are_finite(gan: DCGAN) -> bool:
    return all(bool(tf.reduce_all(tf.math.is_finite(variable))) for variable in gan.generator.weights +
               gan.discriminator.weights)


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
        with atomic_write(path, "w") as handle:
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


class Speedometer:
    """Images per second over the last call into TensorFlow (one step, or steps_per_execution of them)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.start = self.last = time.perf_counter()
        self.last_step = None
        self.speed = 0.0

    def tick(self, step: int) -> float:
        """The speed since the previous tick (the first tick counts one step since the speedometer was made)."""
        now = time.perf_counter()
        steps = step - self.last_step if self.last_step is not None else 1
        self.speed = steps * self.batch_size / max(now - self.last, 1e-9)
        self.last, self.last_step = now, step
        return self.speed


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
        self.speedometer = Speedometer(self.config.training.batch_size)

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        d_loss, g_loss = float(logs["discriminator_loss"]), float(logs["generator_loss"])
        speed = self.speedometer.tick(step)
        seconds = self.offset + self.speedometer.last - self.speedometer.start
        self.log.append({"step": step, "discriminator_loss": d_loss, "generator_loss": g_loss,
                         "images_per_second": speed, "seconds": seconds})
        with self.summary.as_default(step=step):
            tf.summary.scalar("discriminator_loss", d_loss)
            tf.summary.scalar("generator_loss", g_loss)
            tf.summary.scalar("images_per_second", speed)
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
        with runs.reporting_write_errors(f"the best checkpoint of step {step}", self.folder):
            path = self.manager.save(checkpoint_number=step)
            runs.write_config(self.config)
            with atomic_write(os.path.join(self.folder, runs.BEST_FILE), "w") as handle:
                json.dump({"metric": self.metric, "value": value, "step": step, "checkpoint": path}, handle)
        self.value = value
        return True


class MetricsTracker(Periodic):
    """Every metrics_every steps: the chosen metrics of the faces of seeds 0 … metric_samples − 1 against as
    many training faces (sampler.score_generator, as score.py scores a checkpoint), to checkpoint_dir/metrics.csv
    and TensorBoard, and the best network kept."""

    def __init__(self, config: Config, real_images: np.ndarray, start_step: int, best: BestCheckpoint,
                 interrupts: Interrupts):
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

    def __init__(self, config: Config, start_step: int, interrupts: Interrupts, show: bool):
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
        with self.interrupts.hold(), runs.reporting_write_errors(f"the sample grid {os.path.basename(path)}",
                                                             self.config.outputs.sample_dir):
            save_png(image_grid(images, 10, 10), path)
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
                 interrupts: Interrupts):
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
        with self.interrupts.hold(), runs.reporting_write_errors(f"the checkpoint of step {step}",
                                                             self.config.outputs.checkpoint_dir):
            return self.manager.save(checkpoint_number=step)

    def due(self, step: int, logs: dict):
        if np.isfinite(float(logs["generator_loss"])) and np.isfinite(float(logs["discriminator_loss"])):
            self.save(step)


class Progress(keras.callbacks.Callback):
    """A progress bar with step, losses and images/s."""

    def __init__(self, config: Config, start_step: int, show: bool):
        super().__init__()
        from tqdm.auto import tqdm
        self.bar = tqdm(total=config.training.steps, initial=start_step, unit="step", disable=not show, mininterval=0.5)
        self.batch_size = config.training.batch_size

    def on_train_begin(self, logs=None):
        self.speedometer = Speedometer(self.batch_size)

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        self.bar.set_postfix(d_loss=f"{float(logs['discriminator_loss']):.3f}",
                             g_loss=f"{float(logs['generator_loss']):.3f}",
                             img_s=f"{self.speedometer.tick(step):.1f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def on_train_end(self, logs=None):
        self.bar.close()
