"""The zoo's own layers, registered for `model.keras` (safe mode loads only registered classes)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from tensorflow.python.ops import control_flow_util  # no public way to ask whether XLA compiles the graph


@keras.saving.register_keras_serializable(package="reviewflow")
class PaddingMask(keras.layers.Layer):
    """Token ids (batch, length) -> mask, True on real tokens (padding id 0 is at the end).

    The first position is always True: a review that vectorizes to no tokens
    is read as one padding token instead of an empty sequence, which cuDNN's
    LSTM kernel cannot take. Masks stay right-padded, so cuDNN stays eligible.
    """

    def call(self, ids):
        first = ops.arange(ops.shape(ids)[1]) == 0
        return ops.logical_or(ops.not_equal(ids, 0), first[None, :])

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="bool")


# What padding holds while a max is taken: below any activation, and within float16's range.
LOWEST = -6e4


@keras.saving.register_keras_serializable(package="reviewflow")
class ClearPadding(keras.layers.Layer):
    """(vectors (batch, L, D), mask (batch, L)) -> the vectors with 0 at padding, as a `same` convolution pads.

    Before a convolution: a real token near the end then sees zeros beyond it, whether its batch was padded
    to 12 tokens or to 920, so a review's output does not depend on its batch's padding.
    """

    def call(self, vectors, mask):
        return vectors * ops.cast(mask, vectors.dtype)[:, :, None]

    def compute_output_spec(self, vectors, mask):
        return keras.KerasTensor(vectors.shape, dtype=vectors.dtype)


@keras.saving.register_keras_serializable(package="reviewflow")
class MaskedMaxPooling(keras.layers.Layer):
    """(vectors (batch, L, D), mask (batch, L)) -> (max over each window of `pool_size` real positions, the
    windows' mask): windows start at 0 whatever L is (Keras's `same` pooling centres them, so they would
    move with the padding), and padding never wins a max."""

    def __init__(self, pool_size: int, **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pool_size
        self.supports_masking = True  # batch norm's output carries the mask; this layer returns the pooled one

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def call(self, vectors, mask):
        length = ops.shape(vectors)[1]
        extra = (-length) % self.pool_size           # pad to whole windows: windows then start at 0
        mask = ops.pad(mask, [[0, 0], [0, extra]], constant_values=False)
        vectors = ops.pad(vectors, [[0, 0], [0, extra], [0, 0]])
        filled = ops.where(mask[:, :, None], vectors, ops.cast(LOWEST, vectors.dtype))
        pooled = ops.max_pool(filled, self.pool_size, self.pool_size, padding="valid")
        pooled_mask = ops.squeeze(ops.max_pool(ops.cast(mask, "float32")[:, :, None], self.pool_size,
                                               self.pool_size, padding="valid"), -1) > 0
        return ops.where(pooled_mask[:, :, None], pooled, 0), pooled_mask

    def compute_output_spec(self, vectors, mask):
        length = None if vectors.shape[1] is None else -(-vectors.shape[1] // self.pool_size)
        return (keras.KerasTensor((vectors.shape[0], length, vectors.shape[2]), dtype=vectors.dtype),
                keras.KerasTensor((vectors.shape[0], length), dtype="bool"))

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="reviewflow")
class MaskedGlobalMax(keras.layers.Layer):
    """(vectors (batch, L, D), mask (batch, L)) -> the max over real positions (batch, D); padding never wins."""

    def call(self, vectors, mask):
        return ops.max(ops.where(mask[:, :, None], vectors, ops.cast(LOWEST, vectors.dtype)), axis=1)

    def compute_output_spec(self, vectors, mask):
        return keras.KerasTensor((vectors.shape[0], vectors.shape[2]), dtype=vectors.dtype)


@keras.saving.register_keras_serializable(package="reviewflow")
class TrimPadding(keras.layers.Layer):
    """Token ids (batch, L), or a preset's dict of parts (batch, L) -> the same, cut after the batch's longest
    review (at least one position).

    `model.keras`'s vectorizer pads every batch to --max-len; the zoo's models mask padding, so the cut gives
    the same probabilities at a fraction of the cost when a batch's reviews are short (one review to `serve`).
    """

    def call(self, ids):
        mask = ids["padding_mask"] if isinstance(ids, dict) else ops.not_equal(ids, 0)
        longest = ops.maximum(ops.max(ops.sum(ops.cast(mask, "int32"), axis=1), initial=0), 1)
        return keras.tree.map_structure(lambda part: part[:, :longest], ids)

    def compute_output_spec(self, ids):
        return keras.tree.map_structure(lambda part: keras.KerasTensor((part.shape[0], None), dtype=part.dtype), ids)


# Token ids below this are no word: 0 is padding, 1 is [UNK].
FIRST_WORD_ID = 2
_HASH_PRIME = 1_000_003


@keras.saving.register_keras_serializable(package="reviewflow")
class HashedNgrams(keras.layers.Layer):
    """Token ids (batch, L) -> feature ids (batch, F): the words, then their 2..n-grams hashed into buckets.

    Words keep their ids; an n-gram's id is `vocab_size + hash(its ids) % buckets`,
    computed in the graph from adjacent ids, so the model still takes token ids
    and needs no vocabulary of n-grams. Feature id 0 means "nothing here": a
    padding or [UNK] position, and every n-gram that touches one (fastText
    drops unknown words too). F = L + (L - 1) + ... + (L - n + 1).

    With `min_df` > 1, a feature held by fewer training reviews is 0 too
    (scikit-learn's `min_df`): `keep_frequent` sets which, from
    `document_frequency`'s streaming pass. On a small corpus most n-grams
    occur once, and their weights would only learn the review they came from.
    """

    def __init__(self, vocab_size: int, ngrams: int = 2, buckets: int = 1 << 18, min_df: int = 1, **kwargs):
        super().__init__(**kwargs)
        if not 1 <= ngrams <= 3:
            raise ValueError(f"ngrams must be 1, 2 or 3, got {ngrams}")
        if buckets < 1:  # n-grams are hashed modulo buckets: 0 would fail only at the first training step
            raise ValueError(f"buckets must be 1 or more, got {buckets}")
        if min_df < 1:  # scikit-learn's min_df counts reviews: 1 keeps every feature
            raise ValueError(f"min_df must be 1 or more, got {min_df}")
        self.vocab_size, self.ngrams, self.buckets, self.min_df = vocab_size, ngrams, buckets, min_df

    @property
    def num_features(self) -> int:
        """Rows an embedding of these features needs."""
        return self.vocab_size + (self.buckets if self.ngrams > 1 else 0)

    def build(self, input_shape):
        if self.min_df > 1:  # 1 for a feature frequent enough to keep; all kept until `keep_frequent`
            self.kept = self.add_weight(shape=(self.num_features,), initializer="ones", trainable=False, name="kept")

    def all_features(self, ids):
        """The feature ids before `min_df` leaves the rare ones out."""
        ids = ops.cast(ids, "int64")
        is_word = ops.greater_equal(ids, FIRST_WORD_ID)
        features = [ops.where(is_word, ids, 0)]
        hashed, valid = ids, is_word
        for n in range(2, self.ngrams + 1):
            # The n-gram starting at i extends the (n-1)-gram at i by the id at i + n - 1.
            hashed = (hashed[:, :-1] * _HASH_PRIME + ids[:, n - 1:] + n) % self.buckets
            valid = ops.logical_and(valid[:, :-1], is_word[:, n - 1:])
            features.append(ops.where(valid, hashed + self.vocab_size, 0))
        return ops.concatenate(features, axis=1)

    def call(self, ids):
        features = self.all_features(ids)
        if self.min_df > 1:
            features = ops.where(ops.take(self.kept, features) > 0, features, 0)
        return features

    def document_frequency(self, batches) -> tuple[np.ndarray, int]:
        """In how many reviews of `batches` ((token ids, labels), streamed) each feature occurs; and the reviews."""
        counts = np.zeros(self.num_features, np.int64)
        num_documents = 0
        reviews_holding = tf.function(self.reviews_holding, reduce_retracing=True)  # a graph: ~20% faster
        for ids, _ in batches:
            counts += reviews_holding(ids).numpy()
            num_documents += len(ids)
        return counts, num_documents

    def reviews_holding(self, ids) -> tf.Tensor:
        """Token ids (batch, L) -> in how many of the batch's reviews each feature occurs (num_features,)."""
        # Sorting each review's features puts a feature's occurrences side by side, so its first one counts it:
        # 0.64 s on IMDB's training split where tf.unique over (review, feature) keys took 0.89 s.
        features, first, _ = sorted_runs(tf.convert_to_tensor(self.all_features(ids)))
        distinct = tf.boolean_mask(features, tf.logical_and(first, tf.not_equal(features, 0)))
        return tf.math.bincount(tf.cast(distinct, tf.int32), minlength=self.num_features, dtype=tf.int64)

    def keep_frequent(self, document_frequency: np.ndarray) -> None:
        """Leave out, from now on, the features held by fewer than `min_df` reviews."""
        if self.min_df > 1:
            self.kept.assign((document_frequency >= self.min_df).astype("float32"))

    def compute_output_spec(self, ids):
        length = ids.shape[1]
        total = None if length is None else sum(length - n + 1 for n in range(1, self.ngrams + 1))
        return keras.KerasTensor((ids.shape[0], total), dtype="int64")

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "ngrams": self.ngrams,
                "buckets": self.buckets, "min_df": self.min_df}


@keras.saving.register_keras_serializable(package="reviewflow")
class MaskedMean(keras.layers.Layer):
    """(vectors (batch, F, D), feature ids (batch, F)) -> the mean of the vectors whose id is not 0."""

    def call(self, vectors, features):
        present = ops.cast(ops.not_equal(features, 0), vectors.dtype)[:, :, None]
        count = ops.maximum(ops.sum(present, axis=1), 1.0)
        return ops.sum(vectors * present, axis=1) / count

    def compute_output_spec(self, vectors, features):
        return keras.KerasTensor((vectors.shape[0], vectors.shape[2]), dtype=vectors.dtype)


@keras.saving.register_keras_serializable(package="reviewflow")
class MeanOverMask(keras.layers.Layer):
    """(vectors (batch, L, D), mask (batch, L), 1 on real tokens) -> the mean of the real tokens' vectors."""

    def call(self, vectors, mask):
        present = ops.cast(mask, vectors.dtype)[:, :, None]
        return ops.sum(vectors * present, axis=1) / ops.maximum(ops.sum(present, axis=1), 1.0)

    def compute_output_spec(self, vectors, mask):
        return keras.KerasTensor((vectors.shape[0], vectors.shape[2]), dtype=vectors.dtype)


@keras.saving.register_keras_serializable(package="reviewflow")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned vector per position to a sequence (batch, L, D).

    Not a `keras.layers.Embedding`, so that `embed` and `--embeddings` see only
    the token embedding.
    """

    def __init__(self, max_len: int, **kwargs):
        super().__init__(**kwargs)
        self.max_len = max_len

    def build(self, input_shape):
        self.positions = self.add_weight(shape=(self.max_len, input_shape[-1]), name="positions",
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, x):
        return x + ops.cast(self.positions[None, : ops.shape(x)[1], :], x.dtype)

    def get_config(self):
        return {**super().get_config(), "max_len": self.max_len}


def sorted_runs(features):
    """(batch, F) ids -> each row sorted (int32), and where each run of equal ids in it starts and where it ends."""
    # Feature ids stay below 2^31 (buckets + vocabulary); int32 rows sort ~16% faster than int64 ones.
    ordered = tf.sort(tf.cast(features, tf.int32), axis=1)
    changes = tf.not_equal(ordered[:, 1:], ordered[:, :-1])
    edge = tf.ones_like(ordered[:, :1], tf.bool)
    return ordered, tf.concat([edge, changes], axis=1), tf.concat([changes, edge], axis=1)


def term_counts(features):
    """(batch, F) feature ids -> how often each position's feature occurs in its row, in O(F log F).

    A row sorted once answers every "how many equal to mine" by two binary searches; comparing every
    position with every other cost a (batch, F, F) tensor, quadratic in --max-len.
    """
    ordered = tf.sort(features, axis=1)
    return (tf.searchsorted(ordered, features, side="right", out_type=tf.int32)
            - tf.searchsorted(ordered, features, side="left", out_type=tf.int32))


def all_layers(model):
    """Every layer of `model`, nested models' and a Bidirectional's two directions included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.layers.Bidirectional):
            yield layer.forward_layer
            yield layer.backward_layer
        elif isinstance(layer, keras.Model):
            yield from all_layers(layer)


def spread_over_tokens(terms, length: int, ngrams: int):
    """(batch, F, units) parts of a logit, one per `HashedNgrams` feature -> (batch, length, units) per token.

    A word's part stays on its token; an n-gram's is shared equally by the n tokens it covers, so the tokens'
    parts still sum to the features' (the logit minus the bias).
    """
    per_token, offset = 0.0, 0
    for n in range(1, ngrams + 1):
        block = terms[:, offset:offset + length - n + 1] / n           # the n-grams starting at 0 .. L - n
        offset += length - n + 1
        for covered in range(n):  # the n-gram starting at i covers tokens i .. i + n - 1
            per_token = per_token + ops.pad(block, [[0, 0], [covered, n - 1 - covered], [0, 0]])
    return per_token


def class_probabilities(features, num_classes: int = 2):
    """The zoo's output: two classes, one sigmoid unit, P(positive) (batch, 1); N, a softmax (batch, N).

    float32 even under mixed precision: probabilities near 0 or 1 need its range.
    """
    if num_classes == 2:
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32")(features)
    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32")(features)


@keras.saving.register_keras_serializable(package="reviewflow")
class TfIdfLogit(keras.layers.Layer):
    """Feature ids (batch, F) -> the logit w . tfidf(x) + b, with L2-normalized sublinear TF-IDF.

    A feature seen tf times in a review has the value (1 + log tf) * idf, as
    scikit-learn's `sublinear_tf`; each occurrence carries 1/tf of it, so the
    review needs no sparse matrix. Features never seen in training have IDF 0
    (scikit-learn's vocabulary would not hold them). The L2 penalty is
    scikit-learn's: |w|^2 / (2 C N), N the training reviews counted by `adapt`.
    """

    def __init__(self, num_features: int, c: float = 4.0, units: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.num_features, self.c, self.units = num_features, c, units

    def build(self, input_shape):
        # One logit (two classes: the weights' shapes as they always were), or one per class (multinomial).
        per_class = () if self.units == 1 else (self.units,)
        self.coefficients = self.add_weight(shape=(self.num_features, *per_class), initializer="zeros",
                                            name="coefficients")
        self.bias = self.add_weight(shape=per_class, initializer="zeros", name="bias")
        self.idf = self.add_weight(shape=(self.num_features,), initializer="ones", trainable=False, name="idf")
        self.num_documents = self.add_weight(shape=(), initializer="ones", trainable=False, name="num_documents")

    def set_idf(self, document_frequency: np.ndarray, num_documents: int) -> None:
        """scikit-learn's smooth IDF from training document frequencies; 0 for a feature no review holds."""
        idf = np.log((1 + num_documents) / (1 + document_frequency)) + 1
        self.idf.assign(np.where(document_frequency > 0, idf, 0.0).astype("float32"))
        self.num_documents.assign(float(max(num_documents, 1)))

    def terms(self, features):
        """Each feature position's part of the logits (batch, F, units): the logits are their sum plus the bias."""
        present = ops.not_equal(features, 0)
        tf_counts = ops.where(present, ops.cast(term_counts(features), "float32"), 1.0)
        value = (1.0 + ops.log(tf_counts)) * ops.take(self.idf, features) * ops.cast(present, "float32")
        share = value / tf_counts                                     # per occurrence; sums to `value`
        norm = ops.sqrt(ops.maximum(ops.sum(share * value, axis=1, keepdims=True), 1e-12))
        weights = ops.take(self.coefficients, features, axis=0)      # (batch, F) or (batch, F, classes)
        if self.units == 1:
            weights = ops.expand_dims(weights, -1)
        return weights * ops.expand_dims(share / norm, -1)

    def call(self, features):
        self.add_loss(ops.sum(ops.square(self.coefficients)) / (2.0 * self.c * self.num_documents))
        if control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()):
            return ops.sum(self.terms(features), axis=1) + self.bias  # XLA needs static shapes
        return self.distinct_logits(features) + self.bias

    def distinct_logits(self, features):
        """The logits without the bias, as `terms` sums them, from each review's distinct features.

        Sorting a review's features puts each one's occurrences side by side: its count is the length of its
        run, and its weights are gathered once. A forward pass costs ~2/3 of `terms`' two binary searches a
        position (IMDB's widths: 8.6-10.3 against 14.5 ms a batch of 256), and it is most of this model's step.
        """
        ordered, first, last = sorted_runs(features)
        positions = tf.broadcast_to(tf.range(tf.shape(ordered)[1])[None, :], tf.shape(ordered))
        rows = tf.broadcast_to(tf.range(tf.shape(ordered)[0])[:, None], tf.shape(ordered))
        counts = tf.boolean_mask(positions, last) - tf.boolean_mask(positions, first) + 1
        distinct, review = tf.boolean_mask(ordered, first), tf.boolean_mask(rows, first)
        present = tf.cast(tf.not_equal(distinct, 0), "float32")
        value = (1.0 + tf.math.log(tf.cast(counts, "float32"))) * tf.gather(self.idf, distinct) * present
        reviews = tf.shape(features)[0]
        norm = tf.sqrt(tf.maximum(tf.math.unsorted_segment_sum(value * value, review, reviews), 1e-12))
        weights = tf.gather(self.coefficients, distinct)
        if self.units == 1:
            weights = weights[:, None]
        return tf.math.unsorted_segment_sum(weights * value[:, None], review, reviews) / norm[:, None]

    def compute_output_spec(self, features):
        return keras.KerasTensor((features.shape[0], self.units), dtype="float32")

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features, "c": self.c, "units": self.units}


@keras.saving.register_keras_serializable(package="reviewflow")
class Temperature(keras.layers.Layer):
    """Probabilities -> the probabilities of the same logits divided by `temperature` (models/calibration.py).

    P(positive) (batch, 1) through its log-odds and a sigmoid; class probabilities (batch, N) through their
    logarithms and a softmax. T > 0 keeps every prediction's class; T = 1 changes nothing.
    """

    EPSILON = 1e-7  # float32 probabilities' reach (calibration.EPSILON)

    def __init__(self, temperature: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, probabilities):
        p = ops.clip(ops.cast(probabilities, "float32"), self.EPSILON, 1.0 - self.EPSILON)
        if probabilities.shape[-1] == 1:
            return ops.sigmoid((ops.log(p) - ops.log1p(-p)) / self.temperature)
        return ops.softmax(ops.log(p) / self.temperature, axis=-1)

    def compute_output_spec(self, probabilities):
        return keras.KerasTensor(probabilities.shape, dtype="float32")

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
