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
import numpy as np
import tensorflow as tf
from keras import layers

from models.zoo.layers import HashedNgrams, TfIdfLogit

OPTIMIZER = "adam"
LEARNING_RATE = 5e-2        # a convex model on normalized features: large steps are safe
BATCH_SIZE = 256
# Trained to convergence, as scikit-learn trains it: the L2 penalty is the regularizer, and on a small corpus
# the validation loss (noisy, and rising as the model grows sure of itself) picked the first epoch.
EARLY_STOPPING = False
DEFAULT_BUCKETS = 1 << 18   # one weight per bucket: 1 MB, however many bigrams the corpus has


def build(vocab_size: int = 8192, max_len: int = 128, ngrams: int = 2, buckets: int = DEFAULT_BUCKETS,
          c: float = 4.0) -> keras.Model:
    """Token ids -> word and hashed n-gram ids -> TF-IDF -> logistic regression (C as scikit-learn's)."""
    ids = keras.Input((max_len,), dtype="int32", name="token_ids")
    hashing = HashedNgrams(vocab_size, ngrams, buckets, name="ngrams")
    logit = TfIdfLogit(hashing.num_features, c, name="tfidf_logit", dtype="float32")(hashing(ids))
    return keras.Model(ids, layers.Activation("sigmoid", dtype="float32")(logit), name="linear")


def adapt(model: keras.Model, batches) -> None:
    """Set the IDF from document frequencies over `batches` of (token ids, labels): one streaming pass."""
    hashing, logit = model.get_layer("ngrams"), model.get_layer("tfidf_logit")
    document_frequency = np.zeros(logit.num_features, np.int64)
    num_documents = 0
    for ids, _ in batches:
        features = tf.convert_to_tensor(hashing(ids))
        rows = tf.repeat(tf.range(tf.shape(features)[0], dtype=tf.int64), tf.shape(features)[1])
        keys = tf.unique(rows * logit.num_features + tf.reshape(features, [-1]))[0]  # (review, feature) once
        in_review = keys % logit.num_features
        document_frequency += np.bincount(in_review[in_review != 0].numpy(), minlength=logit.num_features)
        num_documents += int(tf.shape(features)[0])
    # scikit-learn's smooth IDF; a feature no training review holds gets 0 (it is not in the vocabulary).
    idf = np.log((1 + num_documents) / (1 + document_frequency)) + 1
    logit.idf.assign(np.where(document_frequency > 0, idf, 0.0).astype("float32"))
    logit.num_documents.assign(float(max(num_documents, 1)))


def search_space(hp) -> dict:
    """The builder's arguments that `tune` searches, given a KerasTuner `HyperParameters`."""
    return {"ngrams": hp.Int("ngrams", 1, 3), "c": hp.Float("c", 0.25, 64.0, sampling="log")}
