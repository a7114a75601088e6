"""Optimizers the zoo needs that Keras does not ship, registered for `.keras` files."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="reviewflow")
class LazyAdam(keras.optimizers.Adam):
    """Adam that updates only the rows a sparse gradient touches (TensorFlow 1's `LazyAdamOptimizer`).

    An embedding's gradient holds the rows of this batch's tokens. Keras's Adam
    decays both moments of every row on every step, so each step costs the
    whole table three times over (`ngram_bag`'s 2^18 n-gram buckets: 3 x 17 MB),
    whatever the batch used. Here a row's moments and weights change only in the
    steps that use it; dense gradients are updated as Adam updates them.
    """

    def update_step(self, gradient, variable, learning_rate):
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        alpha = ops.cast(learning_rate, dtype) * ops.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
        # A row the batch used several times gets the sum of its gradients, as Adam would.
        rows, positions = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(ops.cast(gradient.values, dtype), positions, tf.shape(rows)[0])
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        momentum_rows = beta_1 * ops.take(momentum, rows, axis=0) + (1 - beta_1) * values
        velocity_rows = beta_2 * ops.take(velocity, rows, axis=0) + (1 - beta_2) * ops.square(values)
        self.assign(momentum, tf.IndexedSlices(momentum_rows, rows))
        self.assign(velocity, tf.IndexedSlices(velocity_rows, rows))
        step_rows = alpha * momentum_rows / (ops.sqrt(velocity_rows) + self.epsilon)
        self.assign_sub(variable, tf.IndexedSlices(step_rows, rows))


@keras.saving.register_keras_serializable(package="reviewflow")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` linearly over `warmup_steps`, then linearly down to 0 at `total_steps` (BERT's schedule)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int):
        self.peak, self.warmup_steps, self.total_steps = float(peak), int(warmup_steps), int(total_steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        return self.peak * ops.maximum(ops.minimum(warmup, decay), 0.0)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}
