"""The reference study's two-layer LSTM."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import PaddingMask, class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 32, units: int = 32,
          num_classes: int = 2) -> keras.Model:
    """Embedding -> LSTM(seq) -> LSTM -> sigmoid, padding masked.

    Default activations and no recurrent dropout keep the layers eligible for
    the cuDNN kernel on a GPU.
    """
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.LSTM(units, return_sequences=True)(x, mask=mask)
    x = layers.LSTM(units)(x, mask=mask)
    return keras.Model(ids, class_probabilities(x, num_classes), name="lstm")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [16, 32, 64, 128]), "units": hp.Choice("units", [16, 32, 64])}
