"""The reference study's CNN followed by LSTMs, with the padding mask carried past the convolution."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import ClearPadding, PaddingMask, class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, dropout: float = 0.25,
          filters: int = 32, kernel_size: int = 3, units: int = 32, num_classes: int = 2) -> keras.Model:
    """Embedding -> Dropout -> Conv1D -> LSTM(seq) -> LSTM -> sigmoid.

    Conv1D drops Keras masks, and the study's model without one never left the
    majority class on short reviews: here the convolution keeps the length
    (`same` padding) and the mask computed from the ids goes to both LSTMs.
    """
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.Dropout(dropout)(x)
    x = layers.Conv1D(filters, kernel_size, activation="relu", padding="same")(ClearPadding()(x, mask))
    x = layers.LSTM(units, return_sequences=True)(x, mask=mask)
    x = layers.LSTM(units)(x, mask=mask)
    return keras.Model(ids, class_probabilities(x, num_classes), name="cnn_lstm")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]),
            "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1), "filters": hp.Choice("filters", [32, 64]),
            "units": hp.Choice("units", [16, 32, 64])}
