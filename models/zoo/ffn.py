"""The feed-forward bag-of-embeddings baseline the studies compare against."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import PaddingMask, class_probabilities

# A bag of words costs little per token: fit without --max-len takes 99% of training reviews whole, up to
# 2048 tokens (models/max_len.py). IMDB cut at 128 tokens cost linear and ngram_bag 4.4 points.
MAX_LEN_COVERAGE = 0.99
MAX_LEN_CAP = 2048


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, dense_units: int = 64,
          num_classes: int = 2) -> keras.Model:
    """Embedding -> masked GlobalAveragePooling -> Dense(relu) -> sigmoid."""
    ids = keras.Input((max_len,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.GlobalAveragePooling1D()(x, mask=mask)
    x = layers.Dense(dense_units, activation="relu")(x)
    return keras.Model(ids, class_probabilities(x, num_classes), name="ffn")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [16, 32, 64, 128]),
            "dense_units": hp.Choice("dense_units", [32, 64, 128])}
