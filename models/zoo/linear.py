"""Logistic regression on a TF-IDF-weighted bag of word n-grams: the model users compare against.

The classic text classifier (scikit-learn's TfidfVectorizer(sublinear_tf=True)
+ LogisticRegression) in the zoo's shape: token ids in, words and hashed
n-grams as features, trained by the same streaming `fit` with minibatches (as
scikit-learn's out-of-core example trains SGDClassifier with partial_fit).
Document frequencies come from one streaming pass over the training split
before the first epoch (`adapt`); the IDF is a weight of the model, so
`model.keras` carries it.
"""

from __future__ import annotations

import keras
from keras import layers

from models.zoo.layers import HashedNgrams, TfIdfLogit, spread_over_tokens

DEFAULT_BUCKETS = 1 << 18   # one weight per bucket: 1 MB, however many bigrams the corpus has


def build(vocab_size: int = 8192, max_len: int = 128, ngrams: int = 2, buckets: int = DEFAULT_BUCKETS,
          c: float = 4.0, min_df: int = 2, num_classes: int = 2) -> keras.Model:
    """Token ids -> word and hashed n-gram ids -> TF-IDF -> logistic regression (C, min_df as scikit-learn's).

    Two classes: one logit and a sigmoid; N: multinomial logistic regression, a logit per class and a softmax.
    """
    if not c > 0:  # a negative penalty rewards large weights: it trained, and meant nothing
        raise ValueError(f"c must be > 0 (scikit-learn's C: the inverse of the L2 penalty's strength), got {c}")
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    hashing = HashedNgrams(vocab_size, ngrams, buckets, min_df, name="ngrams")
    units = 1 if num_classes == 2 else num_classes
    logit = TfIdfLogit(hashing.num_features, c, units, name="tfidf_logit", dtype="float32")(hashing(ids))
    activation = "sigmoid" if num_classes == 2 else "softmax"
    return keras.Model(ids, layers.Activation(activation, dtype="float32")(logit), name="linear")


def adapt(model: keras.Model, batches) -> bool:
    """Document frequencies over `batches` of (token ids, labels), one streaming pass: min_df, then the IDF."""
    hashing = model.get_layer("ngrams")
    document_frequency, num_documents = hashing.document_frequency(batches)
    hashing.keep_frequent(document_frequency)
    kept = document_frequency * (document_frequency >= hashing.min_df)
    model.get_layer("tfidf_logit").set_idf(kept, num_documents)
    return True


def token_contributions(model: keras.Model, ids):
    """Token ids (batch, L) -> each token's exact part of the logits (batch, L, units), and the bias (units,).

    Weight times TF-IDF value, feature by feature (an n-gram's shared by its tokens): with the bias, they sum
    to the logits the model outputs before its sigmoid or softmax.
    """
    hashing = model.get_layer("ngrams")
    logit = model.get_layer("tfidf_logit")
    terms = logit.terms(hashing(ids))
    return spread_over_tokens(terms, ids.shape[1], hashing.ngrams), keras.ops.reshape(logit.bias, (-1,))


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"ngrams": hp.Int("ngrams", 1, 3), "c": hp.Float("c", 0.25, 64.0, sampling="log"),
            "min_df": hp.Int("min_df", 1, 3)}
