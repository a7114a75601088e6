import numpy as np
import pytest
import tensorflow as tf

from models import zoo
from models.training import FitSettings, build_and_compile

SMALL = {"hybrid": dict(filters=8, dense_units=8, lstm_units=8),
         "hybrid_split": dict(filters=8, dense_units=8, lstm_units=8)}


def build(name, **overrides):
    settings = FitSettings(model=name, data=".", out=".", hparams=SMALL.get(name, {}), **overrides).resolved()
    return build_and_compile(settings, vocab_size=200)


def test_registry_holds_every_study_model():
    assert set(zoo.MODELS) >= {"cnn", "rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split"}
    assert zoo.optimizer_for("hybrid") == "adam" and zoo.optimizer_for("cnn") == "rmsprop"


@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_maps_ids_to_probabilities_and_a_step_changes_weights(name):
    model = build(name)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 200, size=(8, 128)).astype("int32")
    ids[:, 100:] = 0  # padding at the end
    labels = rng.integers(0, 2, size=(8, 1)).astype("float32")
    probabilities = model.predict(ids, verbose=0)
    assert probabilities.shape == (8, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(ids, labels)
    changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) >= len(model.trainable_weights) // 2


@pytest.mark.parametrize("name", ["rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split"])
def test_all_padding_input_does_not_crash_masked_models(name):
    model = build(name)
    ids = np.zeros((4, 128), "int32")
    ids[1, :3] = 5
    out = model.predict(ids, verbose=0)
    assert out.shape == (4, 1) and np.all(np.isfinite(out))
    loss = model.train_on_batch(ids, np.ones((4, 1), "float32"))
    assert np.isfinite(loss if np.isscalar(loss) else loss[0])


def test_mask_hides_padding_from_recurrent_models():
    # Same tokens, different amounts of padding: a masked model gives the same output.
    model = build("cnn_lstm")
    short = np.zeros((1, 64), "int32")
    short[0, :5] = [3, 4, 5, 6, 7]
    long_model = zoo.build("cnn_lstm", vocab_size=200, max_len=128)
    short_model = zoo.build("cnn_lstm", vocab_size=200, max_len=64)
    short_model.set_weights(long_model.get_weights())
    padded = np.zeros((1, 128), "int32")
    padded[0, :5] = [3, 4, 5, 6, 7]
    np.testing.assert_allclose(long_model(padded, training=False), short_model(short, training=False), atol=1e-5)
    assert model is not None


def test_builders_take_hyperparameters_as_named_arguments():
    model = zoo.build("lstm", vocab_size=50, max_len=16, embedding_dim=4, units=3)
    assert model.count_params() < 1000
    assert tf.keras.backend.floatx() == "float32"
