import collections

import keras
import tensorflow as tf

from pipeline import text
from pipeline.vocab import TokenCounter, read_vocabulary, write_vocabulary


def test_vocabulary_equals_textvectorization_adapt(corpus_files):
    from pipeline import synthetic
    lines = [line.rstrip(b"\n") for line in synthetic.generate_lines(800, seed=5)]
    texts = [line.split(b" ", 1)[1] for line in lines]
    counter = TokenCounter()
    for start in range(0, len(texts), 100):
        counter.add(texts[start:start + 100])
    counter.close()
    ours = [token for token, _ in counter.most_common(500 - 2)]

    layer = keras.layers.TextVectorization(max_tokens=500, standardize=text.standardize)
    layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(64))
    assert ours == layer.get_vocabulary()[2:]  # same tokens, same order (ties included)


def test_counts_equal_tokenizing_each_text_on_tricky_unicode():
    texts = ["Great!!! well-made, CAFÉ café\u00a0naïve", "ＡＢＣ ﬁne\u2028end", "x\x0by\x0cz\tw", "«quoted» — dash",
             "Straße STRASSE ǅ", "e\u0301 \u0301e", "...", "emoji🙂smile"]
    counter = TokenCounter()
    counter.add([t.encode() for t in texts])
    counter.close()
    direct = collections.Counter(t for row in text.tokenize(tf.constant(texts)).numpy().tolist() for t in row)
    assert counter.counts == direct
    assert counter.num_tokens == sum(direct.values())


def test_write_and_read_round_trip(tmp_path):
    tokens = ["the", "café", "naïve"]
    write_vocabulary(tmp_path / "vocab.txt", tokens)
    assert read_vocabulary(tmp_path / "vocab.txt") == tokens
    assert not list(tmp_path.glob("*.incomplete"))
