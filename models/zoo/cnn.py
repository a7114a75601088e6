"""The reference study's CNN: three convolutions with batch norm and pooling."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, filters: int = 64,
          kernel_sizes: tuple[int, int, int] = (3, 5, 5), pool_sizes: tuple[int, int] = (3, 5),
          dense_units: int = 100, num_classes: int = 2) -> keras.Model:
    """Embedding -> [Conv1D -> BatchNorm -> MaxPool] x2 -> Conv1D -> GlobalMaxPool -> Dense -> sigmoid.

    Convolutions use `same` padding so that short `max_len` values still fit
    three convolutions and two poolings (the study's 128 works either way).
    """
    ids = keras.Input((max_len,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    for kernel_size, pool_size in zip(kernel_sizes[:2], pool_sizes):
        x = layers.Conv1D(filters, kernel_size, activation="relu", padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling1D(pool_size, padding="same")(x)
    x = layers.Conv1D(filters, kernel_sizes[2], activation="relu", padding="same")(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    return keras.Model(ids, class_probabilities(x, num_classes), name="cnn")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]), "filters": hp.Choice("filters", [32, 64, 128]),
            "dense_units": hp.Choice("dense_units", [50, 100, 200])}
