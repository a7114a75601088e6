"""The IMDB study's parallel CNN || BiLSTM hybrid, both branches on one shared embedding."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import ClearPadding, MaskedGlobalMax, PaddingMask, class_probabilities


def branches(cnn_input, lstm_input, mask, filters, kernel_size, dense_units, lstm_units):
    """CNN branch and BiLSTM branch, concatenated.

    The BiLSTM branch ends in its final states (2 x lstm_units values), not a
    flattened 128 x 600 sequence: the head stays small and padding is masked.
    """
    cnn = layers.Conv1D(filters, kernel_size, activation="relu", padding="same")(ClearPadding()(cnn_input, mask))
    cnn = MaskedGlobalMax()(cnn, mask)  # padding masked in both branches: a batch's padding changes nothing
    cnn = layers.Dense(dense_units, activation="relu")(cnn)
    cnn = layers.Dropout(0.5)(cnn)
    lstm = layers.Bidirectional(layers.LSTM(lstm_units))(lstm_input, mask=mask)
    return layers.Concatenate()([cnn, lstm])


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, dropout: float = 0.2,
          filters: int = 300, kernel_size: int = 3, dense_units: int = 300, lstm_units: int = 300,
          num_classes: int = 2) -> keras.Model:
    """One Embedding + Dropout feeding a CNN branch and a BiLSTM branch in parallel -> sigmoid."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    embedded = layers.Dropout(dropout)(layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids))
    x = branches(embedded, embedded, mask, filters, kernel_size, dense_units, lstm_units)
    return keras.Model(ids, class_probabilities(x, num_classes), name="hybrid")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches (both hybrids), given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]),
            "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1), "filters": hp.Choice("filters", [64, 128, 300]),
            "dense_units": hp.Choice("dense_units", [64, 128, 300]),
            "lstm_units": hp.Choice("lstm_units", [32, 64, 128, 300])}
