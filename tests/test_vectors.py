"""Pretrained word vectors: streamed, standardized like training, matched to the vocabulary."""

import bz2
import gzip

import numpy as np
import pytest

from pipeline.errors import SourceError
from pipeline.vectors import read_vectors

VOCABULARY = ["great", "awful", "café", "product"]   # ids 2..5


def write(path, lines, compress=None):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    opener = {"gz": gzip.compress, "bz2": bz2.compress}.get(compress, lambda raw: raw)
    path.write_bytes(opener(data))
    return path


@pytest.mark.parametrize("compress", [None, "gz", "bz2"])
def test_fasttext_vec_with_header_is_matched_after_standardizing(tmp_path, compress):
    path = write(tmp_path / "v.vec", ["5 3", "Great 1 2 3", "great 9 9 9", "CAFÉ 4 5 6", "zebra 0 0 1",
                                      "don't 1 1 1"], compress)
    vectors = read_vectors(path, VOCABULARY)
    assert vectors.dim == 3 and vectors.matrix.shape == (6, 3)
    assert vectors.covered.tolist() == [False, False, True, False, True, False]
    np.testing.assert_array_equal(vectors.matrix[2], [1, 2, 3])   # "Great" came first, and wins
    np.testing.assert_array_equal(vectors.matrix[4], [4, 5, 6])   # "CAFÉ" -> "café"
    assert vectors.ids_covered == 2 and vectors.share_of_ids() == 0.5
    assert vectors.share_of_tokens([10, 5, 3, 2], 40) == pytest.approx((10 + 3) / 40)
    assert vectors.share_of_tokens(None, 40) is None


def test_glove_txt_without_header(tmp_path):
    vectors = read_vectors(write(tmp_path / "glove.txt", ["product 0.5 -0.5", "awful -1 1"]), VOCABULARY)
    assert vectors.dim == 2 and vectors.covered[[3, 5]].all() and vectors.lines_read == 2


@pytest.mark.parametrize("bad_line", ["great 1 2", "great 1 x 3", "great"])
def test_a_malformed_line_names_the_file_and_line(tmp_path, bad_line):
    path = write(tmp_path / "bad.vec", ["3 3", "awful 1 2 3", bad_line])
    with pytest.raises(SourceError, match=r"bad.vec: line 3 is not `word` followed by"):
        read_vectors(path, VOCABULARY)


@pytest.mark.parametrize("value", ["nan", "-inf", "1e300"])
def test_a_value_that_is_not_a_finite_float32_names_its_word_and_line(tmp_path, value):
    # It was read, and `fit --embeddings` then "diverged", advising a lower learning rate.
    path = write(tmp_path / "bad.vec", ["2 3", "awful 1 2 3", f"great 1 {value} 3"])
    with pytest.raises(SourceError, match=rf"bad.vec: line 3: the vector of 'great' holds '{value}', not a finite"):
        read_vectors(path, VOCABULARY)


def test_an_empty_or_binary_file_is_refused(tmp_path):
    with pytest.raises(SourceError, match="no vectors"):
        read_vectors(write(tmp_path / "empty.vec", ["2 300"]), VOCABULARY)
    (tmp_path / "model.bin").write_bytes(b"\x00\x01" * 40000)
    with pytest.raises(SourceError, match="model.bin"):
        read_vectors(tmp_path / "model.bin", VOCABULARY)
