"""The reference study's CNN: three convolutions with batch norm and pooling."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import ClearPadding, MaskedGlobalMax, MaskedMaxPooling, PaddingMask, class_probabilities

# Batch norm's moving statistics follow ~10 batches (PyTorch's default), not Keras's ~100 (0.99): the weights
# move faster than a 100-batch average on a small corpus, and validation used stale statistics. On 3,000 short
# reviews (batch 32, 3 epochs), validation accuracy, seeds 1-3: 0.99 swung 0.50-0.82 with training accuracy
# 0.96-0.98 every time; 0.9 gave 0.84-0.87 in either order of reviews.
BATCH_NORM_MOMENTUM = 0.9


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, filters: int = 64,
          kernel_sizes: tuple[int, int, int] = (3, 5, 5), pool_sizes: tuple[int, int] = (3, 5),
          dense_units: int = 100, num_classes: int = 2) -> keras.Model:
    """Embedding -> [Conv1D -> BatchNorm -> MaxPool] x2 -> Conv1D -> GlobalMaxPool -> Dense -> sigmoid.

    Convolutions use `same` padding so that short reviews still fit three convolutions and two poolings.
    Padding is masked throughout (zeros into each convolution, never a max, left out of batch norm's
    statistics): a review's output does not depend on how long its batch was padded.
    """
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    for kernel_size, pool_size in zip(kernel_sizes[:2], pool_sizes):
        x = layers.Conv1D(filters, kernel_size, activation="relu", padding="same")(ClearPadding()(x, mask))
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x, mask=mask)
        x, mask = MaskedMaxPooling(pool_size)(x, mask)
    x = layers.Conv1D(filters, kernel_sizes[2], activation="relu", padding="same")(ClearPadding()(x, mask))
    x = MaskedGlobalMax()(x, mask)
    x = layers.Dense(dense_units, activation="relu")(x)
    return keras.Model(ids, class_probabilities(x, num_classes), name="cnn")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]), "filters": hp.Choice("filters", [32, 64, 128]),
            "dense_units": hp.Choice("dense_units", [50, 100, 200])}
