import numpy as np

from pipeline import synthetic
from pipeline.fasttext_format import parse_line


def test_deterministic_for_a_seed(tmp_path):
    a = synthetic.write_corpus(tmp_path / "a.ft.txt.bz2", 300, seed=7).read_bytes()
    b = synthetic.write_corpus(tmp_path / "b.ft.txt.bz2", 300, seed=7).read_bytes()
    c = synthetic.write_corpus(tmp_path / "c.ft.txt.bz2", 300, seed=8).read_bytes()
    assert a == b != c


def test_amazon_like_format_length_and_balance():
    lines = list(synthetic.generate_lines(3000, seed=3))
    parsed = [parse_line(line.rstrip(b"\n")) for line in lines]
    assert all(isinstance(p, tuple) for p in parsed)
    labels = np.array([label == "2" for label, _ in parsed])
    assert 0.45 < labels.mean() < 0.55
    texts = [text.decode() for _, text in parsed]
    assert all(": " in text for text in texts)  # "Title: body"
    lengths = np.array([len(text.split()) for text in texts])
    assert 70 < lengths.mean() < 95
    assert np.percentile(lengths, 99) > 3 * np.median(lengths)  # a long tail
    assert any("é" in text for text in texts)


def test_mean_words_controls_length():
    lines = list(synthetic.generate_lines(1000, seed=3, mean_words=20))
    assert 15 < np.mean([len(line.split()) for line in lines]) < 30


def test_bad_fraction_mixes_in_malformed_lines():
    lines = list(synthetic.generate_lines(2000, seed=4, bad_fraction=0.1))
    # rejected when parsed, or (bad and glued labels) when sharding, as labels that are no class
    rejected = [line for line in lines if not isinstance(parsed := parse_line(line.rstrip(b"\n")), tuple)
                or parsed[0] not in ("1", "2")]
    assert 150 < len(rejected) < 250


def test_hard_style_is_deterministic_and_has_negation_and_contrast(tmp_path):
    a = synthetic.write_corpus(tmp_path / "a.ft.txt", 400, seed=7, style="hard").read_bytes()
    assert a == synthetic.write_corpus(tmp_path / "b.ft.txt", 400, seed=7, style="hard").read_bytes()
    assert a != synthetic.write_corpus(tmp_path / "c.ft.txt", 400, seed=7).read_bytes()  # simple stays as it was
    texts = [parse_line(line)[1].decode() for line in a.splitlines()]
    with_contrast = [t for t in texts if " but " in t or " however, " in t]
    assert 0.3 < len(with_contrast) / len(texts) < 0.5
    assert sum(any(f" {n} " in t for n in synthetic.NEGATORS) for t in texts) > len(texts) / 4
    assert any(f" {i} " in t for t in texts for i in synthetic.INTENSIFIERS)


def test_hard_style_decides_by_the_clause_after_but():
    # With no label noise, a contrast review's label is the polarity of the phrase after "but"/"however".
    negative, positive = (set(words[:synthetic.HARD_SENTIMENT_WORDS]) for words in synthetic.make_language().sentiment)
    for line in synthetic.generate_lines(300, seed=5, mean_words=12, label_noise=0, style="hard"):
        label, text = parse_line(line.rstrip(b"\n"))
        words = text.decode().rstrip(".").lower().split()
        if "but" not in words and "however," not in words:
            continue
        after = words[max(i for i, w in enumerate(words) if w in ("but", "however,")) + 1:]
        polar = [(i, 1 if w in positive else 0) for i, w in enumerate(after) if w in positive | negative]
        index, polarity = polar[0]
        negated = any(w in {"not", "never", "hardly", "longer"} for w in after[max(0, index - 2):index])
        assert int(label) - 1 == (1 - polarity if negated else polarity)


def test_positive_share_sets_the_balance_and_the_default_keeps_its_bytes(tmp_path):
    labels = [line.split(b" ", 1)[0] for line in synthetic.generate_lines(4000, 3, 10, label_noise=0,
                                                                          positive_share=0.72)]
    assert 0.69 < labels.count(b"__label__2") / len(labels) < 0.75
    balanced = synthetic.write_corpus(tmp_path / "a.ft.txt", 300, seed=7).read_bytes()
    assert balanced == synthetic.write_corpus(tmp_path / "b.ft.txt", 300, seed=7, positive_share=0.5).read_bytes()
