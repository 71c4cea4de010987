"""The GAN as a keras.Model: both networks, their optimisers, the moving average, and one training step for fit().

    gan = DCGAN(config.networks, config.training, config.recipe)   # or DCGAN.from_config(config)
    gan.compile(); gan.fit(dataset)
"""

import contextlib
from typing import Dict, List, Optional

import keras
import numpy as np
import tensorflow as tf

from facegan import devices
from facegan.images import to_float
from facegan import networks as nets
from facegan.augment import diff_augment, mirror_randomly
from facegan.noise import StepNoise
from facegan.config import EMA_RAMP, Config, Networks, Recipe, Training


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam (the same settings, slots, checkpoints and updates) with each weight's update done by
    TensorFlow's fused kernel, ResourceApplyAdam: one op per weight where Keras runs about ten elementwise ones,
    which the profile found taking 3% of a step's op time (docs/speed.md, where a step's time goes)."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle, v=self._velocities[index].value.handle,
            beta1_power=tf.pow(beta_1, step), beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype),
            beta1=beta_1, beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def _adam(networks: Networks, training: Training, learning_rate: float):
    optimizer = FusedAdam(learning_rate, beta_1=training.beta_1)
    if nets.compute_precision(networks) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def global_mean(value):
    """A replica's value averaged over every replica of the strategy, on every worker: the loss of the whole global
    batch, the same on every replica (the value itself with one replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce("MEAN", value)


R1_INTERVAL = 16  # with r1_gamma: the penalty every this many steps, weighted by it (StyleGAN2's lazy R1)


class DCGAN(keras.Model):
    """Both networks, their optimizers and the training step, driven by `fit()`.

    `step` counts finished training steps; `grid_latents` are the 100 fixed vectors of the sample grids; both are
    saved in checkpoints. A step's random draws (its z, flips and DiffAugment) follow from the seed and the step
    (facegan/noise.py), so a resumed run continues exactly, and one step on several replicas is the same step.
    With ema_decay > 0, `ema_generator` holds an exponential moving average of the generator's weights
    (Yazıcı et al. 2019; Progressive GAN, StyleGAN), the network that draws faces (drawing.ready_generator).
    """

    def __init__(self, networks: Networks, training: Training, recipe: Recipe, **kwargs):
        super().__init__(**kwargs)
        self.networks, self.training, self.recipe = networks, training, recipe
        # the initial weights follow from the run's seed, each network's from its own
        self.generator = nets.build_generator(networks, seed=2 * training.seed)
        self.discriminator = nets.build_discriminator(networks, seed=2 * training.seed + 1)
        self.generator_optimizer = _adam(networks, training, training.generator_learning_rate)
        self.discriminator_optimizer = _adam(networks, training, training.discriminator_learning_rate)
        self.generator_optimizer.build(self.generator.trainable_variables)
        self.discriminator_optimizer.build(self.discriminator.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        grid_noise = tf.random.Generator.from_seed(training.seed + 1)
        self.grid_latents = tf.Variable(grid_noise.normal((100, networks.z_dim)), trainable=False,
                                        name="grid_latents")
        self.resident_images = None  # see keep_on_device
        self.ema_generator = None
        if recipe.uses_ema:
            self.ema_generator = nets.build_generator(networks)
            self.ema_generator.set_weights(self.generator.get_weights())
        # further averages by half-life in images (recipe.extra_averages), to compare averages within one run:
        # built last and from no seed, so that what trains is the same with them or without
        self.extra_averages: Dict[int, keras.Model] = {}
        self.unrestored_averages: set = set()  # extra averages a restored checkpoint lacked (restore_extra_averages)
        for half_life in recipe.extra_averages:
            self.extra_averages[half_life] = nets.build_generator(networks)
            self.extra_averages[half_life].set_weights(self.generator.get_weights())
        self.built = True  # both networks are built; fit() must not build the GAN by calling it on images

    @classmethod
    def from_config(cls, config: Config) -> "DCGAN":
        """The GAN of a run's settings: each part gets its own group (networks, training, recipe)."""
        return cls(config.networks, config.training, config.recipe)

    def checkpoint(self, with_extra_averages: bool = True) -> tf.train.Checkpoint:
        """What a checkpoint holds. runs.restore reads the extra averages on their own (restore_extra_averages), so
        that a run can begin keeping one when it resumes."""
        parts = dict(generator=self.generator, discriminator=self.discriminator,
                     generator_optimizer=self.generator_optimizer,
                     discriminator_optimizer=self.discriminator_optimizer,
                     step=self.step, grid_latents=self.grid_latents)
        if self.ema_generator is not None:
            parts["ema_generator"] = self.ema_generator
        if with_extra_averages and self.extra_averages:
            parts["extra_averages"] = self._extra_averages_checkpoint(self.extra_averages)
        return tf.train.Checkpoint(**parts)

    @staticmethod
    def _extra_averages_checkpoint(averages: Dict[int, keras.Model]) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(**{f"half_life_{half_life}": network for half_life, network in averages.items()})

    def restore_extra_averages(self, path: str) -> List[int]:
        """Read the extra averages from the checkpoint at `path`; those it lacks (the run began keeping them on
        resuming) start from the trained generator's weights now. Returns their half-lives."""
        saved = {name.split("/")[1] for name, _ in tf.train.list_variables(path) if name.startswith("extra_averages/")}
        found = {half_life: network for half_life, network in self.extra_averages.items()
                 if f"half_life_{half_life}" in saved}
        if found:
            status = tf.train.Checkpoint(extra_averages=self._extra_averages_checkpoint(found)).restore(path)
            status.assert_existing_objects_matched().expect_partial()
        missing = [half_life for half_life in self.extra_averages if half_life not in found]
        for half_life in missing:
            self.extra_averages[half_life].set_weights(self.generator.get_weights())
        self.unrestored_averages = set(missing)  # drawing.ready_generator will not draw these as if restored
        return missing

    def ema_decay_at(self, step, half_life: Optional[int] = None):
        """The decay of the update after `step` steps. By default ramped up early as tf.train.ExponentialMovingAverage
        does, min(ema_decay, (1 + step) / (10 + step)), so the average does not lag behind the first steps. With
        ema_half_life (images), or for the extra average of `half_life`, as StyleGAN2-ADA: 0.5 ** (batch /
        half-life), the half-life ramped up as config.ramped_half_life: min(half-life, 5% of the images seen)."""
        step = tf.cast(step, tf.float32)
        half_life = half_life or self.recipe.ema_half_life
        if half_life:
            batch = float(self.training.batch_size)
            half_life = tf.minimum(float(half_life), EMA_RAMP * (step + 1.0) * batch)  # config.ramped_half_life
            return tf.pow(0.5, batch / half_life)
        return tf.minimum(self.recipe.ema_decay, (1.0 + step) / (10.0 + step))

    def update_ema(self):
        """Move each average's weights toward the generator's. Their batch-norm statistics are not averaged: they
        belong to the weights that use them, and refresh_average_statistics() measures them before one draws."""
        with tf.name_scope("moving_average"):  # names the profile's rows (experiments/profile.py)
            averages = [(self.ema_generator, self.ema_decay_at(self.step))] if self.ema_generator is not None else []
            averages += [(network, self.ema_decay_at(self.step, half_life))
                         for half_life, network in self.extra_averages.items()]
            for network, decay in averages:
                for average, weight in zip(network.trainable_weights, self.generator.trainable_weights):
                    average.assign(decay * average + (1.0 - decay) * weight)

    def refresh_average_statistics(self, batches: Optional[int] = None, half_life: Optional[int] = None):
        """Give the moving average (or the extra average of `half_life`) batch-norm statistics of its own weights
        before it draws faces ("standing statistics", Brock et al. 2019, BigGAN; precise BN): measured in training
        mode on `batches` batches of 100 of its own faces (default recipe.ema_statistics_batches), the same z each
        time. With 0, copy the trained generator's statistics instead, which belong to other weights: how the
        average drew before, and worse in every metric of the ablation (README). Training never reads them.
        drawing.ready_generator calls this."""
        network = self.ema_generator if half_life is None else self.extra_averages[half_life]
        if network is None:
            return
        batches = self.recipe.ema_statistics_batches if batches is None else batches
        if batches:
            nets.recompute_batch_norm_statistics(network, batch_size=100, batches=batches, seed=self.training.seed)
            return
        for average, weight in zip(network.non_trainable_weights, self.generator.non_trainable_weights):
            average.assign(weight)

    def keep_on_device(self, images: np.ndarray) -> bool:
        """Copy the uint8 faces to the training device once (under a tf.distribute strategy, one copy on each),
        so that each step gathers its batch there and the input stream carries only indices
        (celeba_utils.make_dataset(indices_only=True)). Each pair of bytes is held as one float16, whose gather
        kernel every device has (GPUs have none for uint8), and is viewed as bytes again after the gather.
        Returns False, keeping nothing, when the device has no room for them."""
        size = self.networks.image_size
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"keep_on_device takes uint8 faces of shape (n, {size}, {size}, 3), got "
                             f"{images.dtype} {images.shape}")
        try:
            pairs = tf.bitcast(tf.constant(images.reshape(len(images), -1, 2)), tf.float16)
            self.resident_images = tf.Variable(pairs, trainable=False, name="resident_images")
        except tf.errors.ResourceExhaustedError:
            self.resident_images = None
            return False
        return True

    def real_batch(self, data):
        """The step's real faces in [-1, 1]: the batch itself, or gathered on the device from its indices."""
        if self.resident_images is None:
            return data
        with tf.name_scope("real_batch"):
            pairs = tf.gather(self.resident_images, data)
            size = self.networks.image_size
            return to_float(tf.reshape(tf.bitcast(pairs, tf.uint8), (-1, size, size, 3)))

    def learning_rate_factor(self, step):
        """The learning rates' share of their settings at the step after `step` finished steps: 1, then with
        learning_rate_decay falling linearly over that share of the run's last steps, toward 0 at `steps`."""
        if not self.training.learning_rate_decay:
            return tf.constant(1.0)
        steps = float(self.training.steps)
        remaining = steps - tf.cast(step, tf.float32)
        return tf.clip_by_value(remaining / (self.training.learning_rate_decay * steps), 0.0, 1.0)

    def _set_learning_rates(self):
        """Each optimiser's learning rate from the run's settings and the decay. Checkpoints save the optimisers'
        rates; without this a run resumed with new rates would train on with the saved ones."""
        with tf.name_scope("learning_rates"):
            factor = self.learning_rate_factor(self.step)
            self.generator_optimizer.learning_rate.assign(factor * self.training.generator_learning_rate)
            self.discriminator_optimizer.learning_rate.assign(factor * self.training.discriminator_learning_rate)

    def r1_penalty(self, real_inputs):
        """γ/2 · the mean over the faces of ‖∇ₓ D(x)‖² on the real faces as the discriminator sees them (R1), ×
        R1_INTERVAL at every R1_INTERVAL-th step and 0 between (lazy regularisation). Its own forward pass, so
        that the other steps pay nothing. The input gradient is not loss-scaled under mixed_float16: the scale's
        2^15 overflows it (tests/test_gan.py compares both mixed precisions with float32)."""
        def penalty():
            with tf.GradientTape() as tape:
                tape.watch(real_inputs)
                total = tf.reduce_sum(tf.cast(self.discriminator(real_inputs, training=True), tf.float32))
            gradients = tf.cast(tape.gradient(total, real_inputs), tf.float32)
            norms = tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3])
            return 0.5 * self.recipe.r1_gamma * R1_INTERVAL * tf.reduce_mean(norms)

        with tf.name_scope("r1_penalty"):
            return tf.cond(self.step % R1_INTERVAL == 0, penalty, lambda: tf.constant(0.0))

    def discriminate(self, real_inputs, fake_inputs):
        """The discriminator's (real logits, fake logits) in training mode: two calls, each batch normalised by its
        own statistics, or with discriminator_batches="joint…" one call on both batches, their statistics shared."""
        if self.recipe.discriminator_batches != "separate":
            count = tf.shape(real_inputs)[0]
            logits = self.discriminator(tf.concat([real_inputs, tf.cast(fake_inputs, real_inputs.dtype)], 0),
                                        training=True)
            return logits[:count], logits[count:]
        return self.discriminator(real_inputs, training=True), self.discriminator(fake_inputs, training=True)

    def _generator_logits(self, real_inputs, fake_inputs, real_statistics=None):
        """The discriminator's logits of the fakes in the generator's update, in the batch the discriminator step
        used (a joint batch holds the same real faces; no gradient reaches them; with joint_constant_statistics
        none reaches the batch's statistics either; with joint_reused_statistics the real half's statistics are
        `real_statistics`, recorded by the discriminator's step)."""
        if self.recipe.discriminator_batches == "separate":
            return self.discriminator(fake_inputs, training=True)
        held = self.recipe.discriminator_batches in ("joint_constant_statistics", "joint_reused_statistics")
        if held and nets.takes_halves_apart(self.discriminator):  # the real half without a backward pass
            return nets.held_statistics_logits(self.discriminator, real_inputs, fake_inputs, real_statistics)
        with nets.constant_statistics(self.discriminator) if held else contextlib.nullcontext():
            return self.discriminate(tf.stop_gradient(real_inputs), fake_inputs)[1]

    def _discriminator_update(self, real_images, fake_images, replicas, augment):
        """One discriminator update on real faces and (already drawn) fakes; returns its loss (without R1), the
        real faces as it saw them, and with joint_reused_statistics its batch norms' statistics of them (else
        None)."""
        reuse = (self.recipe.discriminator_batches == "joint_reused_statistics"
                 and nets.takes_halves_apart(self.discriminator))
        with tf.GradientTape() as tape:
            real_inputs = augment(real_images)
            with (nets.recording_statistics(self.discriminator, tf.shape(real_inputs)[0]) if reuse
                  else contextlib.nullcontext()) as real_statistics:
                real_logits, fake_logits = self.discriminate(real_inputs, augment(fake_images))
            d_loss = nets.discriminator_loss(real_logits, fake_logits, self.recipe.label_smoothing)
            total = d_loss + self.r1_penalty(real_inputs) if self.recipe.r1_gamma else d_loss
            scaled = self.discriminator_optimizer.scale_loss(total / replicas)
        gradients = tape.gradient(scaled, self.discriminator.trainable_variables)
        self.discriminator_optimizer.apply_gradients(zip(gradients, self.discriminator.trainable_variables))
        return d_loss, real_inputs, real_statistics

    def _generator_update(self, tape, scaled_loss):
        gradients = tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.generator_optimizer.apply_gradients(zip(gradients, self.generator.trainable_variables))

    def step_noise(self) -> StepNoise:
        """The random draws of the step about to run (the one after `step` finished steps)."""
        return StepNoise(self.training.seed, self.step)

    def _train_networks(self, real_images, batch_size, replicas, augment, noise):
        """The DCGAN step of Radford et al. and carpedm20/DCGAN-tensorflow: the discriminator learns from fakes of
        one z, then the generator from the updated discriminator's verdict on fakes of a new z (two generator
        forward passes per step)."""
        z = noise.normal((batch_size, self.networks.z_dim))
        d_loss, real_inputs, real_statistics = self._discriminator_update(
            real_images, self.generator(z, training=True), replicas, augment)
        z = noise.normal((batch_size, self.networks.z_dim))
        with tf.GradientTape() as tape:
            g_loss = nets.generator_loss(self._generator_logits(
                real_inputs, augment(self.generator(z, training=True)), real_statistics))
            scaled = self.generator_optimizer.scale_loss(g_loss / replicas)
        self._generator_update(tape, scaled)
        return d_loss, g_loss

    def _train_networks_reusing_fakes(self, real_images, batch_size, replicas, augment, noise):
        """The step of pytorch/examples' DCGAN (reuse_fakes): one generator forward pass; the discriminator learns
        from those fakes (their gradient stopped), then the generator backpropagates through the updated
        discriminator's verdict on the same fakes. About 1/4 less work per step than _train_networks."""
        z = noise.normal((batch_size, self.networks.z_dim))
        with tf.GradientTape() as tape:
            fake_images = self.generator(z, training=True)
            with tape.stop_recording():
                d_loss, real_inputs, real_statistics = self._discriminator_update(
                    real_images, tf.stop_gradient(fake_images), replicas, augment)
            g_loss = nets.generator_loss(self._generator_logits(real_inputs, augment(fake_images), real_statistics))
            scaled = self.generator_optimizer.scale_loss(g_loss / replicas)
        self._generator_update(tape, scaled)
        return d_loss, g_loss

    def train_step(self, data):
        real_images = self.real_batch(data)
        # Under tf.distribute each replica sees its share of the batch; Keras sums the replicas' gradients, so
        # each replica's mean loss is divided by their number to give the gradient of the global mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(real_images)[0]
        noise = self.step_noise()
        if self.recipe.flip_faces:
            real_images = mirror_randomly(real_images, noise)

        def augment(images):
            with tf.name_scope("diff_augment"):
                return diff_augment(images, self.recipe.diff_augment, noise)

        self._set_learning_rates()  # from the settings every step: a checkpoint's saved rates do not linger
        train = self._train_networks_reusing_fakes if self.recipe.reuse_fakes else self._train_networks
        d_loss, g_loss = train(real_images, batch_size, replicas, augment, noise)
        if self.ema_generator is not None or self.extra_averages:
            self.update_ema()
        self.step.assign_add(1)
        logs = {"discriminator_loss": global_mean(d_loss), "generator_loss": global_mean(g_loss), "step": self.step}
        if devices.spans_workers(tf.distribute.get_strategy()):
            # fit() averages what each replica returns along a first axis across workers, which scalars lack
            # ("Invalid reduction dimension 0 for input with 0 dimensions"): the same values, with that axis
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs


