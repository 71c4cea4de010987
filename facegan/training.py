"""Train the face DCGAN: run, resume, checkpoints, sample grids and the loss log.

    from facegan import training
    training.train(image_path="img_align_celeba", steps=20000)

Re-running resumes from the newest checkpoint in `checkpoint_dir` (default `my_net/`): the step count goes on,
and the 100 grid vectors are the same, so grids from before and after a stop line up. Stop at any moment
(Jupyter's stop button, Ctrl-C, SIGTERM): a checkpoint is written before training returns. What runs after each
step is in facegan/callbacks.py, the clean stop in facegan/stopping.py, the run's folder in facegan/runs.py.
"""

import contextlib
import dataclasses
import os
import shutil
import tempfile
from typing import List, Optional, Sequence

import keras
import tensorflow as tf

import celeba_utils
from facegan import callbacks as steps_callbacks
from facegan.config import Config
from facegan import devices
from facegan.gan import DCGAN
from facegan.metrics import registry
from facegan import networks
from facegan import runs
from facegan.stopping import Interrupts, StopOnRequest


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


def uses_xla(config: Config) -> bool:
    """Whether the step is compiled by XLA: the jit_compile setting, or (None) on GPUs only, since it was measured
    slower on CPUs."""
    return config.devices.jit_compile if config.devices.jit_compile is not None else devices.has_gpu()


def wants_resident_data(config: Config) -> bool:
    """Whether the faces are to be kept on the training device (None: on; measured faster on CPUs and GPUs). They
    stay in host memory anyway when they do not fit (DCGAN.keep_on_device)."""
    return config.devices.resident_data is not False


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
    per_replica = config.training.batch_size // strategy.num_replicas_in_sync
    group_size = config.networks.minibatch_stddev
    if group_size and per_replica % group_size:
        raise ValueError(f"each of the {strategy.num_replicas_in_sync} devices gets {per_replica} faces a step, not a "
                         f"whole number of minibatch_stddev's groups of {group_size}: change batch_size or "
                         "minibatch_stddev")
    if strategy.num_replicas_in_sync > 1:
        device = f"{strategy.num_replicas_in_sync} devices ({config.devices.strategy})"
    restore_dir, scratch = config.outputs.checkpoint_dir, None
    if not devices.is_chief(strategy):  # other workers write into a scratch folder: the chief's files are the run's
        scratch = tempfile.mkdtemp(prefix="dcgan-worker-")
        config = config.replace(checkpoint_dir=os.path.join(scratch, "my_net"),
                                sample_dir=os.path.join(scratch, "imgs"))
    try:
        return _train_in_folder(config, show, faces, callbacks, device, strategy, restore_dir)
    finally:
        if scratch is not None:  # what another worker wrote is the chief's to keep: nothing of it stays behind
            shutil.rmtree(scratch, ignore_errors=True)


def _train_in_folder(config: Config, show: bool, faces: Optional[celeba_utils.Faces],
                     callbacks: Sequence[keras.callbacks.Callback], device: str, strategy: tf.distribute.Strategy,
                     restore_dir: str) -> Run:
    """Train in config's folders (a worker's scratch ones, or the run's), holding the run's lock."""
    runs.prepare_folder(config.outputs.checkpoint_dir, "checkpoint_dir")
    with runs.RunLock(config.outputs.checkpoint_dir):
        runs.prepare_folder(config.outputs.sample_dir, "sample_dir")
        if faces is None:
            faces = load_training_faces(config, progress=show)
        gan, restored = _build(config, show, faces, strategy, restore_dir)
        start_step = int(gan.step.numpy())
        if show:
            where = f"resuming from {restored} at step {start_step}" if restored else "starting at step 0"
            precision, reason = devices.resolve_precision(config.networks.precision)
            print(f"{len(faces.images)} faces from {config.data.image_path}; training on {device} in {precision} "
                  f"({config.networks.precision}: {reason}), {where}, toward step {config.training.steps}")
        if start_step >= config.training.steps:
            return Run(config, start_step, start_step, False, restored, None)
        with strategy.scope():
            gan.compile(jit_compile=uses_xla(config), steps_per_execution=config.devices.steps_per_execution)
        return _fit(gan, config, faces, start_step, callbacks, show)


def _build(config: Config, show: bool, faces: celeba_utils.Faces, strategy: tf.distribute.Strategy,
           restore_dir: str):
    """The GAN, restored from restore_dir's newest checkpoint when there is one (refused when its networks differ),
    with the faces on its device when wanted and they fit; the run's config.json and starts.jsonl written.
    Returns (gan, the checkpoint restored or None)."""
    saved = runs.read_config(restore_dir)
    has_checkpoint = bool(runs.list_checkpoints(restore_dir))
    if config.outputs.fresh:
        for folder in (config.outputs.checkpoint_dir, config.outputs.sample_dir):
            moved = runs.archive(folder)
            if moved and show:
                print(f"fresh start: moved the earlier run to {moved}")
        saved, has_checkpoint = None, False
    if saved is not None and has_checkpoint:
        runs.check_same_networks(saved, config, restore_dir)
        runs.warn_of_recipe_changes(saved, config, restore_dir)
    with strategy.scope():
        gan = DCGAN.from_config(config)
        restored = runs.restore(gan, restore_dir) if has_checkpoint else None
        if restored is None:  # true moving statistics from the start: grids in inference mode are right at step 1
            networks.recompute_batch_norm_statistics(gan.generator, config.training.batch_size, batches=1,
                                                     seed=config.training.seed)
            for average in [gan.ema_generator, *gan.extra_averages.values()]:  # averages start as copies of it
                if average is not None:
                    average.set_weights(gan.generator.get_weights())
        if wants_resident_data(config) and not gan.keep_on_device(faces.images) and show:
            print(f"the {len(faces.images)} faces do not fit on the device: streaming them from memory instead")
    runs.write_config(config)
    runs.record_start(config, int(gan.step.numpy()))
    return gan, restored


def _callbacks(gan: DCGAN, config: Config, faces: celeba_utils.Faces, start_step: int, interrupts: Interrupts,
               show: bool) -> List[keras.callbacks.Callback]:
    """The loss log, grids, checkpoints and progress bar, and the metrics with the best network when they are on."""
    chosen = [steps_callbacks.LossLog(config, start_step),
              steps_callbacks.SampleGrids(config, start_step, interrupts, show),
              steps_callbacks.Checkpoints(runs.checkpoint_manager(gan, config), config, start_step, interrupts),
              steps_callbacks.Progress(config, start_step, show)]
    if config.quality.metrics_every:
        best = steps_callbacks.BestCheckpoint(gan, config, config.quality.best_metric)
        chosen.append(steps_callbacks.MetricsTracker(config, faces.images, start_step, best, interrupts))
    return chosen


def _fit(gan: DCGAN, config: Config, faces: celeba_utils.Faces, start_step: int,
         extra_callbacks: Sequence[keras.callbacks.Callback], show: bool) -> Run:
    """fit() from start_step toward config.training.steps, then the last checkpoint and grid of where it stopped."""
    # the data order continues anew after a resume, reproducible from the seed and the step
    dataset = celeba_utils.make_dataset(faces.images, config.training.batch_size,
                                        seed=config.training.seed + start_step,
                                        indices_only=gan.resident_images is not None)
    with Interrupts() as interrupts:
        chosen = _callbacks(gan, config, faces, start_step, interrupts, show)
        losses, grids, checkpoints = chosen[:3]
        all_callbacks = chosen + [*extra_callbacks, StopOnRequest(interrupts)]
        try:
            gan.fit(dataset, epochs=1, steps_per_epoch=config.training.steps - start_step, verbose=0,
                    callbacks=all_callbacks, shuffle=False)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as error:
            if not devices.spans_workers(gan.distribute_strategy):
                raise
            raise _worker_lost(error, config) from None
        except KeyboardInterrupt:  # a second stop request, or a stop before training began
            interrupts.requested = True
            for callback in all_callbacks:  # fit() does not end its callbacks when interrupted
                with contextlib.suppress(Exception):
                    callback.on_train_end()
        step = int(gan.step.numpy())
        path = None
        if step > start_step and losses.diverged_at is None:
            path = checkpoints.manager.latest_checkpoint
            if not (path and path.endswith(f"ckpt-{step}")):
                path = checkpoints.save(step)
        _raise_if_diverged(losses.diverged_at or checkpoints.diverged_at, config)
        grid = runs.grid_file(config.outputs.sample_dir, step)
        if step > start_step and grids.last_written != step:
            grid = grids.write(step)
    if show:
        print(f"{'stopped' if interrupts.requested else 'finished'} at step {step}; checkpoint {path}; grid {grid}")
    return Run(config, start_step, step, interrupts.requested, path, grid)


def _worker_lost(error: Exception, config: Config) -> RuntimeError:
    """The error a worker gets when another worker of its multi-worker run stops answering."""
    kept = runs.list_checkpoints(config.outputs.checkpoint_dir)
    reason = str(error).strip().splitlines()[0][:300]
    newest = kept[-1][1] if kept else "none yet"
    return RuntimeError(f"A worker of this multi-worker run stopped answering ({type(error).__name__}: {reason}). "
                        f"Training stopped; the newest checkpoint is {newest}. Start every worker again with the same "
                        "TF_CONFIG to resume from it (docs/training.md, several machines).")


def _raise_if_diverged(diverged_at: Optional[int], config: Config):
    if diverged_at is None:
        return
    last_good = runs.list_checkpoints(config.outputs.checkpoint_dir)
    raise FloatingPointError(
        f"Training diverged: a loss or weight was not finite at step {diverged_at}. Nothing was saved from it; the "
        f"last good checkpoint is {last_good[-1][1] if last_good else 'none'}. Lower the learning rates or check the "
        "data, then run again to resume from that checkpoint.")
