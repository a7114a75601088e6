"""The reference study's two-layer SimpleRNN."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import PaddingMask, class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, units: int = 128,
          dense_units: tuple[int, int] = (32, 100), num_classes: int = 2) -> keras.Model:
    """Embedding -> SimpleRNN(seq) -> SimpleRNN -> Dense(32) -> Dense(100) -> sigmoid, padding masked."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.SimpleRNN(units, return_sequences=True)(x, mask=mask)
    x = layers.SimpleRNN(units)(x, mask=mask)
    for width in dense_units:
        x = layers.Dense(width, activation="relu")(x)
    return keras.Model(ids, class_probabilities(x, num_classes), name="rnn")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]), "units": hp.Choice("units", [32, 64, 128])}
