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


# Adagrad's accumulators start at 0 (not Keras's 0.1): a bag's row gradients are ~1e-5 (a mean over a review's
# features and a batch), and a start of 0.1 would keep its steps that small.
ROW_EPSILON = 1e-12


@tf.function(jit_compile=True)
def _row_adagrad_rows(variable, accumulator, values, indices, rate):
    """Row-wise Adagrad on the rows of a sparse gradient, compiled by XLA: TensorFlow's own CPU scatter kernels
    cost ~100 ns a row, XLA's ~6 (60k rows x 16: 5.7 vs 0.34 ms). Every occurrence of a row adds to it (no
    de-duplication, whose count of rows would be a new shape, compiled again, every step)."""
    accumulator.scatter_add(tf.IndexedSlices(tf.reduce_mean(tf.square(values), axis=1), indices))
    scale = rate * tf.math.rsqrt(tf.gather(accumulator, indices) + ROW_EPSILON)
    variable.scatter_sub(tf.IndexedSlices(values * scale[:, None], indices))


def _tf_variable(variable):
    """The tf.Variable under a Keras variable (what a compiled function takes)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


@keras.saving.register_keras_serializable(package="reviewflow")
class RowAdagrad(keras.optimizers.Optimizer):
    """Adagrad with one accumulator per row (the mean of the row's squared gradients), as DLRM's and
    TorchRec's embeddings train; a sparse gradient updates only the rows the batch used.

    Each row's steps are normalized like Adam's, so rare and frequent n-grams learn alike, at one scalar of
    state per row (lazy Adam keeps two whole tables more, written to every checkpoint) and, for an
    embedding, one compiled function a step (a scatter of scalars, one of rows) where lazy Adam needs a
    de-duplication and three scatters of whole rows. A weight of one dimension (a bias) has an accumulator
    per element, a scalar weight one.
    """

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._accumulators = [self.add_variable(tuple(variable.shape[:1]), initializer="zeros",
                                                dtype=variable.dtype, name=f"{variable.name}_row_accumulator")
                              for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        accumulator = self._accumulators[self._get_variable_index(variable)]
        rate = ops.cast(learning_rate, variable.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            _row_adagrad_rows(_tf_variable(variable), _tf_variable(accumulator),
                              ops.cast(gradient.values, variable.dtype), gradient.indices, rate)
            return
        gradient = ops.cast(gradient, variable.dtype)
        within_row = tuple(range(1, len(variable.shape)))   # a row's elements; none for a bias or a scalar
        squares = ops.square(gradient)
        self.assign_add(accumulator, ops.mean(squares, axis=within_row) if within_row else squares)
        scale = rate * ops.rsqrt(accumulator + ROW_EPSILON)
        self.assign_sub(variable, gradient * ops.reshape(scale, tuple(accumulator.shape) + (1,) * len(within_row)))


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
