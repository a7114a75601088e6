"""The feed-forward bag-of-embeddings baseline the studies compare against."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import PaddingMask, class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, dense_units: int = 64,
          num_classes: int = 2) -> keras.Model:
    """Embedding -> masked GlobalAveragePooling -> Dense(relu) -> sigmoid."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.GlobalAveragePooling1D()(x, mask=mask)
    x = layers.Dense(dense_units, activation="relu")(x)
    return keras.Model(ids, class_probabilities(x, num_classes), name="ffn")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [16, 32, 64, 128]),
            "dense_units": hp.Choice("dense_units", [32, 64, 128])}
