"""fastText's supervised model (Joulin et al. 2016, "Bag of Tricks"): the mean of word and hashed
n-gram embeddings, then one linear layer. 94.6% on Amazon polarity with bigrams in the paper.
"""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import HashedNgrams, MaskedMean, class_probabilities, spread_over_tokens

# fastText's default is 2,000,000 buckets x 100 dimensions (800 MB, and Adam keeps two more tables of that
# size). 2^18 buckets x 16 dimensions is 17 MB of weights (51 MB with Adam's moments): it fits any laptop,
# and a table that stays near the CPU's caches keeps a step fast (2^12 buckets train 1.6x faster still,
# with more n-grams sharing a bucket). The paper's own model had 10 dimensions. For the full 3.6M-review
# corpus on a GPU, raise both (--param buckets=2000000 --param embedding_dim=64).
DEFAULT_BUCKETS = 1 << 18


def build(vocab_size: int = 8192, max_len: int = 128, ngrams: int = 2, buckets: int = DEFAULT_BUCKETS,
          embedding_dim: int = 16, dropout: float = 0.0, min_df: int = 1, num_classes: int = 2) -> keras.Model:
    """Token ids -> word and hashed 2..n-gram ids -> Embedding -> masked mean -> Dense(1) sigmoid.

    Padding and [UNK] (and every n-gram touching them) are left out of the mean, and so is a feature
    held by fewer than `min_df` training reviews (see `adapt`).
    """
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    hashing = HashedNgrams(vocab_size, ngrams, buckets, min_df, name="ngrams")
    features = hashing(ids)
    vectors = layers.Embedding(hashing.num_features, embedding_dim, name="embedding")(features)
    x = layers.Dropout(dropout)(MaskedMean()(vectors, features))
    return keras.Model(ids, class_probabilities(x, num_classes), name="ngram_bag")


def adapt(model: keras.Model, batches) -> bool:
    """With `min_df` > 1, leave out the words and n-grams of fewer training reviews (one streaming pass).

    True if it read `batches`.
    """
    hashing = model.get_layer("ngrams")
    if hashing.min_df <= 1:
        return False
    hashing.keep_frequent(hashing.document_frequency(batches)[0])
    return True


def token_contributions(model: keras.Model, ids):
    """Token ids (batch, L) -> each token's exact part of the logits (batch, L, units), and the bias (units,).

    The logits are linear in the mean of the features' vectors: a feature's part is its vector through the
    output layer, over the number of features averaged (an n-gram's shared by its tokens).
    """
    from keras import ops

    hashing = model.get_layer("ngrams")
    output = model.layers[-1]  # the Dense of class_probabilities
    features = hashing(ids)
    present = ops.cast(ops.not_equal(features, 0), "float32")
    count = ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)
    vectors = ops.cast(model.get_layer("embedding")(features), "float32")
    terms = ops.matmul(vectors, output.kernel) * ops.expand_dims(present / count, -1)
    return spread_over_tokens(terms, ids.shape[1], hashing.ngrams), output.bias


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"ngrams": hp.Int("ngrams", 1, 3), "embedding_dim": hp.Choice("embedding_dim", [16, 32, 64, 128]),
            "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1)}
