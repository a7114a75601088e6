"""LazyAdam and RowAdagrad: updates on the rows a sparse gradient touches, nothing on the others."""

import keras
import numpy as np
import tensorflow as tf

from models.training import FitSettings, make_plan
from models.zoo.optimizers import ROW_EPSILON, LazyAdam, RowAdagrad

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


def row_adagrad_steps(start, gradients, rate):
    """Row-wise Adagrad in numpy: each row's accumulator gathers the mean of its squared gradients."""
    weights, accumulator = start.copy(), np.zeros(len(start), "float32")
    for rows, values in gradients:
        np.add.at(accumulator, rows, np.mean(values ** 2, axis=1))
        np.subtract.at(weights, rows, rate * values / np.sqrt(accumulator[rows] + ROW_EPSILON)[:, None])
    return weights


def test_row_adagrad_moves_only_the_rows_a_sparse_gradient_uses():
    variable, start = table(), table().numpy()
    optimizer = RowAdagrad(learning_rate=0.1)
    steps = [([1, 3, 1], sparse([1, 3, 1], seed=1)), ([4], sparse([4], seed=2))]  # row 1 twice in one batch
    for _, gradient in steps:
        optimizer.apply([gradient], [variable])
    expected = row_adagrad_steps(start, [(np.array(rows), gradient.values.numpy()) for rows, gradient in steps], 0.1)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(variable.numpy()[[0, 2, 5]], start[[0, 2, 5]])
    # A first step moves a row used once by about the rate, however small its gradient (a bag's are ~1e-5).
    np.testing.assert_allclose(np.sqrt(np.mean((start[4] - variable.numpy()[4]) ** 2)), 0.1, rtol=1e-3)


def test_row_adagrad_on_a_dense_gradient_is_the_same_update_of_every_row():
    variable, start = table(), table().numpy()
    bias, scalar = keras.Variable(np.zeros(DIM, "float32")), keras.Variable(np.float32(0.0))  # linear's bias: ()
    optimizer = RowAdagrad(learning_rate=0.1)
    gradients = [np.random.default_rng(seed).normal(size=(ROWS, DIM)).astype("float32") for seed in (3, 4)]
    for gradient in gradients:
        optimizer.apply([tf.constant(gradient), tf.constant(gradient[0]), tf.constant(gradient[0, 0])],
                        [variable, bias, scalar])
    every_row = np.arange(ROWS)
    np.testing.assert_allclose(variable.numpy(), row_adagrad_steps(start, [(every_row, g) for g in gradients], 0.1),
                               rtol=1e-5)
    # A bias's elements each have their accumulator: the step of each is the rate times the sign, then less.
    first, second = gradients[0][0], gradients[1][0]
    expected = -0.1 * np.sign(first) - 0.1 * second / np.sqrt(first ** 2 + second ** 2)
    np.testing.assert_allclose(bias.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(scalar.numpy(), expected[0], rtol=1e-5)


def test_ngram_bag_trains_with_row_adagrad_and_lazy_adam_stays_lazy_under_xla():
    # Row-wise Adagrad compiles (one scatter of a batch's rows); lazy Adam named by the user is kept.
    base = dict(model="ngram_bag", data="d", out="o")
    assert make_plan(FitSettings(**base)).optimizer.value == "row_adagrad"
    assert make_plan(FitSettings(**base, jit_compile=True)).optimizer.value == "row_adagrad"
    assert make_plan(FitSettings(**base, jit_compile=True, optimizer="lazy_adam")).optimizer.value == "lazy_adam"
