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
    vectorizer = text.make_vectorizer(["good", "bad"], max_len=5)
    ids = vectorizer(tf.constant(["Good, BAD unseen", ""])).numpy()
    assert ids.tolist() == [[2, 3, 1, 0, 0], [0, 0, 0, 0, 0]]
