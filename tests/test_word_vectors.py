"""`fit --embeddings`: which models take word vectors, their dimension, and the rows they start."""

import numpy as np
import pytest

from models import word_vectors, zoo
from pipeline.errors import ReviewflowError
from pipeline.vectors import read_vectors


@pytest.fixture
def vectors(tmp_path):
    path = tmp_path / "vectors.vec"
    path.write_text("2 4\ngreat 1 2 3 4\nawful -1 -2 -3 -4\n")
    return read_vectors(path, ["great", "fine", "awful"])   # ids 2, 3, 4 (0 and 1: padding, [UNK])


def test_the_dimension_comes_from_the_vectors_unless_it_disagrees(vectors):
    assert word_vectors.hparams_for("cnn", {}, vectors)["embedding_dim"] == 4
    with pytest.raises(ReviewflowError, match="4-dimensional vectors but --param embedding_dim=8"):
        word_vectors.hparams_for("cnn", {"embedding_dim": 8}, vectors)
    with pytest.raises(ReviewflowError, match="no word embedding"):
        word_vectors.hparams_for("linear", {}, vectors)
    with pytest.raises(ReviewflowError, match="--freeze-embeddings"):
        word_vectors.hparams_for("ngram_bag", {}, vectors, freeze=True)
    assert word_vectors.hparams_for("ngram_bag", {"ngrams": 1}, vectors, freeze=True)["embedding_dim"] == 4


def test_covered_rows_are_copied_into_every_word_embedding_and_frozen_on_request(vectors):
    model = zoo.build("hybrid_split", vocab_size=5, max_len=8, embedding_dim=4, filters=2, dense_units=2,
                      lstm_units=2)
    names = word_vectors.initialize(model, vectors, freeze=True)
    assert len(names) == 2
    for layer in word_vectors.embedding_layers(model):
        table = layer.embeddings.numpy()
        np.testing.assert_allclose(table[2], [1, 2, 3, 4])
        np.testing.assert_allclose(table[4], [-1, -2, -3, -4])
        assert not layer.trainable
