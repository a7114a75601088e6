import numpy as np
import pytest
import tensorflow as tf

from pipeline import text


def tokens(value: str) -> list[str]:
    return [t.decode() for t in text.tokenize(tf.constant([value]))[0].numpy()]


def test_unicode_aware_standardization_keeps_accents():
    assert tokens("Café NAÏVE, Crème-brûlée!!") == ["café", "naïve", "crème", "brûlée"]


def test_nfkc_and_case_folding():
    # Full-width letters and the ligature fold to plain ones; German sharp s case-folds.
    assert tokens("ＡＢＣ ﬁne STRASSE Straße") == ["abc", "fine", "strasse", "strasse"]


def test_separators_and_controls_split_tokens():
    assert tokens("a\u00a0b\u2028c\td\r\ne\x85f") == ["a", "b", "c", "d", "e", "f"]


def test_vectorizer_pads_at_the_end_and_maps_unknown_to_one():
    vectorizer = text.vocabulary_vectorizer(["good", "bad"], max_len=5)
    ids = vectorizer(tf.constant(["Good, BAD unseen", ""])).numpy()
    assert ids.tolist() == [[2, 3, 1, 0, 0], [0, 0, 0, 0, 0]]


def test_truncations_keep_the_head_the_tail_or_both_of_a_long_review():
    words = [f"w{i}" for i in range(20)]
    review = tf.constant([" ".join(words), "w1 w2", ""])
    kept = {truncate: text.vocabulary_vectorizer(words, max_len=8, truncate=truncate)(review).numpy().tolist()
            for truncate in text.TRUNCATIONS}
    ids = list(range(2, 22))  # w0 is id 2
    assert kept["head"][0] == ids[:8] and kept["tail"][0] == ids[-8:]
    assert kept["head_tail"][0] == ids[:2] + ids[-6:]  # a quarter from the head, the rest from the tail
    for rows in kept.values():  # short reviews are whole, padded at the end, in every mode
        assert rows[1] == [3, 4, 0, 0, 0, 0, 0, 0] and rows[2] == [0] * 8


def test_head_truncation_equals_keep_head_and_tail_with_the_whole_head():
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 40, size=64)
    ragged = tf.RaggedTensor.from_row_lengths(rng.integers(1, 100, size=int(lengths.sum())), lengths)
    head = ragged.to_tensor(shape=[None, 16]).numpy()
    np.testing.assert_array_equal(text.keep_head_and_tail(ragged, 16, 16).numpy(), head)
    tail = text.keep_head_and_tail(ragged, 16, 0).numpy()
    for row, length in zip(range(64), lengths):
        expected = ragged[row].numpy()[-16:] if length > 16 else ragged[row].numpy()
        np.testing.assert_array_equal(tail[row][: min(length, 16)], expected)


@pytest.mark.parametrize("max_len", [1, 7, 16, 40])
def test_head_and_tail_keeps_what_kept_positions_says_for_every_row(max_len):
    rng = np.random.default_rng(max_len)
    lengths = np.concatenate([[0, max_len, max_len + 1], rng.integers(0, 3 * max_len, size=61)])
    rows = [rng.integers(2, 1000, size=length).tolist() for length in lengths]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(rows).astype(np.int64), lengths)
    for truncate in text.TRUNCATIONS:
        kept = text.head_and_tail(ragged, max_len, int(max_len * text.HEAD_SHARE[truncate])).to_list()
        assert kept == [[row[i] for i in text.kept_positions(len(row), max_len, truncate)] for row in rows]
