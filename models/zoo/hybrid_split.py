"""The IMDB study's CNN || BiLSTM hybrid with one embedding per branch."""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.hybrid import branches, search_space  # noqa: F401 - the shared hybrid's space
from models.zoo.layers import PaddingMask, class_probabilities


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, dropout: float = 0.2,
          filters: int = 300, kernel_size: int = 3, dense_units: int = 300, lstm_units: int = 300,
          num_classes: int = 2) -> keras.Model:
    """As `hybrid.build`, but each branch has its own Embedding (and Dropout)."""
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    cnn_in = layers.Dropout(dropout)(layers.Embedding(vocab_size, embedding_dim, name="cnn_embedding")(ids))
    lstm_in = layers.Dropout(dropout)(layers.Embedding(vocab_size, embedding_dim, name="lstm_embedding")(ids))
    x = branches(cnn_in, lstm_in, mask, filters, kernel_size, dense_units, lstm_units)
    return keras.Model(ids, class_probabilities(x, num_classes), name="hybrid_split")
