import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from conftest import TOKEN_ID_MODELS
from models import zoo
from models.training import FitSettings, build_and_compile, make_plan
from models.zoo.layers import TfIdfLogit

SMALL = {"hybrid": dict(filters=8, dense_units=8, lstm_units=8),
         "hybrid_split": dict(filters=8, dense_units=8, lstm_units=8)}


def build(name, **overrides):
    settings = FitSettings(model=name, data=".", out=".", hparams=SMALL.get(name, {}), **overrides)
    return build_and_compile(make_plan(settings), settings, vocab_size=200)


def test_registry_holds_every_study_model_with_the_studies_optimizers():
    assert {"cnn", "rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split"} <= set(zoo.MODELS)
    assert zoo.spec("hybrid").optimizer == "adam" and zoo.spec("cnn").optimizer == "rmsprop"


@pytest.mark.parametrize("name", TOKEN_ID_MODELS)
def test_maps_ids_to_probabilities_and_a_step_changes_weights(name):
    model = build(name)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 200, size=(8, 128)).astype("int32")
    ids[:, 100:] = 0  # padding at the end
    labels = rng.integers(0, 2, size=(8, 1)).astype("float32")
    probabilities = model.predict(ids, verbose=0)
    assert probabilities.shape == (8, 1)
    assert np.all((probabilities >= 0) & (probabilities <= 1))
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(ids, labels)
    changed = [not np.allclose(a, b) for a, b in zip(before, model.get_weights())]
    assert sum(changed) >= len(model.trainable_weights) // 2


@pytest.mark.parametrize("name", TOKEN_ID_MODELS)
def test_all_padding_input_does_not_crash_any_model(name):
    model = build(name)
    ids = np.zeros((4, 128), "int32")
    ids[1, :3] = 5
    out = model.predict(ids, verbose=0)
    assert out.shape == (4, 1) and np.all(np.isfinite(out))
    loss = model.train_on_batch(ids, np.ones((4, 1), "float32"))
    assert np.isfinite(loss if np.isscalar(loss) else loss[0])


def test_mask_hides_padding_from_recurrent_models():
    # Same tokens, different amounts of padding: a masked model gives the same output.
    short = np.zeros((1, 64), "int32")
    short[0, :5] = [3, 4, 5, 6, 7]
    long_model = zoo.build("cnn_lstm", vocab_size=200, max_len=128)
    short_model = zoo.build("cnn_lstm", vocab_size=200, max_len=64)
    short_model.set_weights(long_model.get_weights())
    padded = np.zeros((1, 128), "int32")
    padded[0, :5] = [3, 4, 5, 6, 7]
    np.testing.assert_allclose(long_model(padded, training=False), short_model(short, training=False), atol=1e-5)


@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_every_search_space_names_its_builders_arguments_and_builds(name):
    import inspect

    import keras_tuner as kt

    hp = kt.HyperParameters()
    space = zoo.spec(name).search_space(hp)
    assert space and set(space) <= set(inspect.signature(zoo.spec(name).module().build).parameters) - {
        "vocab_size", "max_len"}
    assert set(space) == {p.name for p in hp.space}  # every searched value reaches the builder
    largest = {p.name: max(p.values) if hasattr(p, "values") else p.max_value for p in hp.space}
    if not zoo.spec(name).needs_preset:  # the pretrained one builds from a checkpoint: tests/test_pretrained.py
        assert zoo.build(name, vocab_size=200, max_len=16, **largest).count_params() > 0


def test_builders_take_hyperparameters_as_named_arguments():
    model = zoo.build("lstm", vocab_size=50, max_len=16, embedding_dim=4, units=3)
    assert model.count_params() < 1000
    assert tf.keras.backend.floatx() == "float32"


def test_hashed_ngrams_skip_padding_and_unknown_words_and_respect_order():
    from models.zoo.layers import HashedNgrams

    layer = HashedNgrams(vocab_size=100, ngrams=3, buckets=1000)
    features = np.asarray(layer(np.array([[5, 6, 1, 7, 8, 0], [6, 5, 9, 9, 0, 0]], "int32")))
    assert features.shape == (2, 6 + 5 + 4)
    words, bigrams, trigrams = features[:, :6], features[:, 6:11], features[:, 11:]
    assert words[0].tolist() == [5, 6, 0, 7, 8, 0]                      # [UNK] (1) and padding (0) are no feature
    assert (bigrams[0] != 0).tolist() == [True, False, False, True, False]  # 5-6 and 7-8; none touches [UNK]/padding
    assert np.all((bigrams[bigrams != 0] >= 100) & (bigrams[bigrams != 0] < 1100))
    assert bigrams[0, 0] != bigrams[1, 0]                               # "5 6" is not "6 5"
    assert (trigrams[1] != 0).tolist() == [True, True, False, False]
    assert not set(bigrams[bigrams != 0]) & set(trigrams[trigrams != 0])


def test_min_df_leaves_out_features_of_too_few_reviews():
    from models.zoo.layers import HashedNgrams

    layer = HashedNgrams(vocab_size=100, ngrams=2, buckets=1000, min_df=2)
    reviews = np.array([[5, 6, 7, 0], [5, 6, 8, 0], [9, 9, 9, 9]], "int32")
    before = np.asarray(layer(reviews))
    frequency, num_documents = layer.document_frequency([(reviews[:2], None), (reviews[2:], None)])  # streamed
    assert num_documents == 3 and frequency[5] == 2 and frequency[9] == 1  # 9 four times, but in one review
    assert frequency[before[0, 4]] == 2                                     # the bigram "5 6"
    layer.keep_frequent(frequency)
    after = np.asarray(layer(reviews))
    assert after[0].tolist() == [5, 6, 0, 0, before[0, 4], 0, 0]  # 5, 6 and "5 6" are in two reviews; 7 in one
    assert not after[2].any()


def test_ngram_bag_ignores_padding_length():
    long_model = zoo.build("ngram_bag", vocab_size=50, max_len=32, buckets=64)
    short_model = zoo.build("ngram_bag", vocab_size=50, max_len=16, buckets=64)
    short_model.set_weights(long_model.get_weights())
    tokens = [3, 4, 5, 6, 7]
    short, padded = np.zeros((1, 16), "int32"), np.zeros((1, 32), "int32")
    short[0, :5] = padded[0, :5] = tokens
    np.testing.assert_allclose(long_model(padded), short_model(short), atol=1e-6)


def test_transformer_never_attends_to_padding():
    # Padded positions differ from each other only by their position vectors: changing those must not
    # change the output, in attention or in pooling.
    model = zoo.build("transformer", vocab_size=50, max_len=16, embedding_dim=8, num_heads=2, ff_dim=16)
    ids = np.zeros((1, 16), "int32")
    ids[0, :4] = [5, 6, 7, 8]
    before = np.asarray(model(ids, training=False))
    positions = model.get_layer("positions").positions
    values = positions.numpy()
    values[4:] = np.random.default_rng(0).normal(size=values[4:].shape)
    positions.assign(values)
    np.testing.assert_allclose(np.asarray(model(ids, training=False)), before, atol=1e-5)
    values[1] += np.random.default_rng(1).normal(size=values[1].shape)  # a real position does matter
    positions.assign(values)
    assert not np.allclose(np.asarray(model(ids, training=False)), before, atol=1e-5)


def test_linear_is_logistic_regression_on_scikit_learns_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    from models.zoo import linear

    documents = [[5, 5, 7, 9], [7, 8, 2], [5, 9, 9, 9, 3], [2, 3, 4, 7, 7]]
    ids = np.zeros((len(documents), 8), "int32")
    for row, document in enumerate(documents):
        ids[row, :len(document)] = document
    model = linear.build(vocab_size=12, max_len=8, ngrams=1, min_df=2)
    linear.adapt(model, [(ids[:2], None), (ids[2:], None)])  # streamed in two batches
    vectorizer = TfidfVectorizer(analyzer=lambda document: [str(i) for i in document], sublinear_tf=True, min_df=2)
    tfidf = vectorizer.fit_transform(documents).toarray()
    weights = np.random.default_rng(1).normal(size=12).astype("float32")
    logit = model.get_layer("tfidf_logit")
    logit.coefficients.assign(weights)
    columns = [int(token) for token in vectorizer.get_feature_names_out()]
    expected = 1 / (1 + np.exp(-(tfidf @ weights[columns])))
    np.testing.assert_allclose(np.asarray(model(ids)).ravel(), expected, rtol=1e-5)
    penalty = float(np.sum(weights ** 2) / (2 * logit.c * len(documents)))
    assert float(model.losses[0]) == pytest.approx(penalty, rel=1e-5)


def test_linear_logits_from_distinct_features_equal_the_sum_of_terms_and_xlas():
    # Training and prediction sum each review's distinct features; explanations (and XLA, which needs static
    # shapes) sum `terms`, position by position. The same logits either way, for 1 and 3 units, an empty batch,
    # rows of padding only and a width of 0.
    rng = np.random.default_rng(0)
    for units in (1, 3):
        layer = TfIdfLogit(500, units=units)
        layer.build((None, None))
        layer.idf.assign(rng.uniform(0, 5, 500).astype("float32"))
        layer.coefficients.assign(rng.normal(size=layer.coefficients.shape).astype("float32"))
        compiled = tf.function(layer, jit_compile=True)
        for rows, width in ((16, 300), (4, 1), (3, 0), (0, 5)):
            features = rng.integers(0, 60, size=(rows, width)).astype("int64")  # repeats, and 0: padding
            features[: rows // 4] = 0
            expected = np.asarray(ops.sum(layer.terms(tf.constant(features)), axis=1) + layer.bias)
            distinct = layer.distinct_logits(tf.constant(features)) + layer.bias
            np.testing.assert_allclose(np.asarray(distinct), expected, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.asarray(layer(tf.constant(features))), expected, rtol=1e-5, atol=1e-6)
            if rows:
                np.testing.assert_allclose(np.asarray(compiled(tf.constant(features))), expected, rtol=1e-5,
                                           atol=1e-6)


def test_linear_counts_terms_as_the_pairwise_comparison_did():
    # The quadratic formula linear used before: every position compared with every other.
    from models.zoo.layers import term_counts
    rng = np.random.default_rng(0)
    for vocabulary, length in ((5, 7), (40, 300), (3000, 1000)):
        features = rng.integers(0, vocabulary, size=(16, length)).astype("int64")
        features[:, length // 2:] *= rng.integers(0, 2, size=(16, length - length // 2))  # padding in the tail
        pairwise = ((features[:, :, None] == features[:, None, :]) & (features[:, None, :] != 0)).sum(axis=2)
        counted = term_counts(tf.constant(features)).numpy()
        np.testing.assert_array_equal(np.where(features != 0, counted, 0), pairwise)
