"""The random draws of a training step: the z of its fakes, the mirrored faces, DiffAugment's shifts and cutouts.

    noise = StepNoise(seed=0, step=gan.step)     # inside the step
    z = noise.normal((batch_size, 100))          # this replica's rows of the global batch's draw

Each draw is a stateless function of (the run's seed, the step, which draw of the step it is), made for the whole
global batch; each replica of a tf.distribute strategy keeps its own rows. So a step draws the same numbers on one
device, on two GPUs or on two machines, and a resumed run continues the same draws from its step alone.
"""

import tensorflow as tf


class StepNoise:
    """The draws of one step (create one per step, in the step): `normal` and `uniform` as tf.random.Generator's,
    whose first axis is this replica's share of the global batch."""

    def __init__(self, seed: int, step):
        self.base = tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])
        self.draws = 0  # counted as the step is traced: the same order on every replica and every step
        context = tf.distribute.get_replica_context()
        self.replicas = context.num_replicas_in_sync if context is not None else 1
        self.replica = context.replica_id_in_sync_group if context is not None else 0

    def _seed(self):
        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.base, self.draws)

    def _global_shape(self, shape):
        rows = shape[0]
        return tf.stack([rows * self.replicas, *shape[1:]]) if self.replicas > 1 else shape

    def _own_rows(self, drawn, shape):
        if self.replicas == 1:
            return drawn
        rows = shape[0]
        return drawn[self.replica * rows:(self.replica + 1) * rows]

    def normal(self, shape, dtype=tf.float32):
        drawn = tf.random.stateless_normal(self._global_shape(shape), self._seed(), dtype=dtype)
        return self._own_rows(drawn, shape)

    def uniform(self, shape, minval=0, maxval=None, dtype=tf.float32):
        maxval = 1 if maxval is None and not dtype.is_integer else maxval
        drawn = tf.random.stateless_uniform(self._global_shape(shape), self._seed(), minval, maxval, dtype=dtype)
        return self._own_rows(drawn, shape)
