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
    labels = np.array([label for label, _ in parsed])
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
    rejected = [line for line in lines if not isinstance(parse_line(line.rstrip(b"\n")), tuple)]
    assert 150 < len(rejected) < 250
