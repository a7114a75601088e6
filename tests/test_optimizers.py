"""LazyAdam: Adam on the rows a sparse gradient touches, nothing on the others."""

import keras
import numpy as np
import tensorflow as tf

from models.training import FitSettings, make_plan
from models.zoo.optimizers import LazyAdam

ROWS, DIM = 6, 3


def table():
    return keras.Variable(np.random.default_rng(0).normal(size=(ROWS, DIM)).astype("float32"))


def sparse(rows, seed):
    values = np.random.default_rng(seed).normal(size=(len(rows), DIM)).astype("float32")
    return tf.IndexedSlices(tf.constant(values), tf.constant(rows, dtype=tf.int64), tf.constant([ROWS, DIM]))


def test_first_step_equals_adam_then_unused_rows_stay_put():
    lazy_table, adam_table = table(), table()
    lazy, adam = LazyAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    first = sparse([1, 3, 1], seed=1)  # row 1 twice in the batch: its gradients add up
    lazy.apply([first], [lazy_table])
    adam.apply([tf.convert_to_tensor(first)], [adam_table])
    np.testing.assert_allclose(lazy_table.numpy(), adam_table.numpy(), atol=1e-6)

    before = lazy_table.numpy()
    second = sparse([4], seed=2)
    lazy.apply([second], [lazy_table])
    adam.apply([tf.convert_to_tensor(second)], [adam_table])
    after = lazy_table.numpy()
    np.testing.assert_array_equal(after[[0, 1, 2, 3, 5]], before[[0, 1, 2, 3, 5]])  # only row 4 was used
    assert not np.allclose(after[4], before[4])
    assert not np.allclose(adam_table.numpy()[1], before[1])  # Adam's momentum still moves row 1


def test_a_dense_gradient_is_adams():
    lazy_table, adam_table = table(), table()
    gradient = tf.constant(np.random.default_rng(3).normal(size=(ROWS, DIM)).astype("float32"))
    lazy, adam = LazyAdam(learning_rate=0.1), keras.optimizers.Adam(learning_rate=0.1)
    for _ in range(3):
        lazy.apply([gradient], [lazy_table])
        adam.apply([gradient], [adam_table])
    np.testing.assert_allclose(lazy_table.numpy(), adam_table.numpy(), atol=1e-6)


def test_with_xla_the_default_becomes_adam_unless_asked_for():
    # XLA compiles the de-duplication of rows slowly; a user who names the optimizer gets it anyway.
    base = dict(model="ngram_bag", data="d", out="o")
    assert make_plan(FitSettings(**base)).optimizer.value == "lazy_adam"
    assert make_plan(FitSettings(**base, jit_compile=True)).optimizer.value == "adam"
    assert make_plan(FitSettings(**base, jit_compile=True, optimizer="lazy_adam")).optimizer.value == "lazy_adam"
