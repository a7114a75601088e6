"""A small Transformer encoder trained from scratch: token + learned position embeddings, pre-norm blocks.

Defaults suit a CPU and the 128-token reviews (2 blocks, 64 dimensions, 4 heads,
~0.6M parameters); on a workstation GPU use `--param embedding_dim=256
--param num_heads=8 --param num_layers=4 --param ff_dim=1024` with
`--mixed-precision` (and `--jit-compile`).
"""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import PaddingMask, PositionEmbedding, class_probabilities


def encoder_block(x, mask, embedding_dim: int, num_heads: int, ff_dim: int, dropout: float):
    """Pre-norm: x + Attention(LayerNorm(x)), then x + FeedForward(LayerNorm(x)); padding is never attended."""
    h = layers.LayerNormalization(epsilon=1e-6)(x)
    h = layers.MultiHeadAttention(num_heads, key_dim=embedding_dim // num_heads, dropout=dropout)(
        h, h, query_mask=mask, value_mask=mask)
    x = layers.Add()([x, layers.Dropout(dropout)(h)])
    h = layers.LayerNormalization(epsilon=1e-6)(x)
    h = layers.Dense(ff_dim, activation="gelu")(h)
    h = layers.Dense(embedding_dim)(h)
    return layers.Add()([x, layers.Dropout(dropout)(h)])


def build(vocab_size: int = 8192, max_len: int = 128, embedding_dim: int = 64, num_heads: int = 4,
          num_layers: int = 2, ff_dim: int = 128, dropout: float = 0.1, num_classes: int = 2) -> keras.Model:
    """Embedding + positions -> N encoder blocks -> LayerNorm -> masked mean -> Dropout -> sigmoid."""
    if embedding_dim % num_heads:
        raise ValueError(f"embedding_dim ({embedding_dim}) must be a multiple of num_heads ({num_heads})")
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = PaddingMask()(ids)
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = layers.Dropout(dropout)(PositionEmbedding(max_len, name="positions")(x))
    for _ in range(num_layers):
        x = encoder_block(x, mask, embedding_dim, num_heads, ff_dim, dropout)
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = layers.Dropout(dropout)(layers.GlobalAveragePooling1D()(x, mask=mask))
    return keras.Model(ids, class_probabilities(x, num_classes), name="transformer")


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"embedding_dim": hp.Choice("embedding_dim", [32, 64, 128]), "num_heads": hp.Choice("num_heads", [2, 4]),
            "num_layers": hp.Int("num_layers", 1, 3), "ff_dim": hp.Choice("ff_dim", [64, 128, 256]),
            "dropout": hp.Float("dropout", 0.0, 0.3, step=0.1)}
