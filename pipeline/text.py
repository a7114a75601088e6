"""The one definition of tokenization: `standardize`, `tokenize` and the vectorizer.

The vocabulary pass in `shard`, training's `TextVectorization`, and every
command that tokenizes all call these functions, so they cannot disagree.
"""

from __future__ import annotations

import unicodedata

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from pipeline.text_settings import (  # noqa: F401 - re-exported: the settings tokenization is made with
    DEFAULT_TRUNCATE, HEAD_SHARE, NUM_SPECIAL_TOKENS, SHARD_VOCAB_SIZE, TRUNCATIONS)

DEFAULT_MAX_LEN = 128

# Every run of characters that are neither letters, digits, combining marks nor
# ASCII whitespace (punctuation, symbols, Unicode separators such as U+2028,
# control characters) becomes one space: tokens then never hold a line break,
# so vocab.txt stays one token per line. Plain spaces are left alone rather than
# matched and rewritten, which makes the regex ~4x faster on real text.
NON_WORD_PATTERN = r"[^\pL\pN\pM\s]+"


@keras.saving.register_keras_serializable(package="reviewflow")
def standardize(texts: tf.Tensor) -> tf.Tensor:
    """NFKC normalization with Unicode case folding, then punctuation -> space."""
    # case_fold_utf8 is ICU's NFKC_Casefold: NFKC and case folding in one op.
    # Accented letters survive (the reference's ASCII regex dropped them).
    folded = tf_text.case_fold_utf8(texts)
    return tf.strings.regex_replace(folded, NON_WORD_PATTERN, " ")


def tokenize(texts: tf.Tensor) -> tf.RaggedTensor:
    """Standardized tokens of a batch of strings, split on whitespace, as TextVectorization does."""
    return tf.strings.split(standardize(texts))


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def token_lengths(texts: tf.Tensor) -> tf.Tensor:
    """Tokens per text, as training's standardize() and split count them (before any --max-len cut)."""
    return tokenize(texts).row_lengths()


def add_lengths(histogram: dict[int, int], lengths) -> None:
    """Add a batch's token lengths to a histogram {length: reviews}, in place."""
    values, counts = np.unique(np.asarray(lengths), return_counts=True)
    for value, count in zip(values.tolist(), counts.tolist()):
        histogram[value] = histogram.get(value, 0) + count


def vocabulary_vectorizer(vocabulary: list[str], max_len: int = DEFAULT_MAX_LEN,
                    truncate: str = "head") -> keras.layers.TextVectorization:
    """Strings -> int ids padded (at the end) to `max_len`, longer reviews cut as `truncate` says;
    0 is padding, 1 unknown."""
    options = dict(standardize=standardize, split="whitespace", output_mode="int", vocabulary=vocabulary,
                   name="vectorizer")
    if truncate == "head":  # TextVectorization's own cut: what runs before `truncate` existed hold
        return keras.layers.TextVectorization(output_sequence_length=max_len, **options)
    return TruncatingVectorization(max_len=max_len, truncate=truncate, **options)


def head_and_tail(ids: tf.RaggedTensor, max_len: int, head: int) -> tf.RaggedTensor:
    """Ragged ids (batch, None) -> ragged (batch, <= max_len): a longer row keeps its first `head` and last
    `max_len - head` ids, a shorter one all of them.

    Only the long rows (a few in a block) lose values: a +1 where a long row's dropped middle starts and a -1
    where it ends, summed along the values, marks what to drop; ~2 ms a block of 1024 reviews, where
    positions computed for every value took ~4.
    """
    lengths = ids.row_lengths()
    long_rows = lengths > max_len
    starts = tf.boolean_mask(ids.row_splits[:-1], long_rows)
    ends = tf.boolean_mask(ids.row_splits[1:], long_rows)
    edges = tf.concat([starts + head, ends - (max_len - head)], 0)
    signs = tf.concat([tf.ones_like(starts, tf.int32), -tf.ones_like(ends, tf.int32)], 0)
    num_values = tf.shape(ids.values, out_type=edges.dtype)[0]
    dropped = tf.cumsum(tf.math.unsorted_segment_sum(signs, edges, num_values + 1)[:-1]) > 0
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(ids.values, ~dropped),
                                            tf.minimum(lengths, tf.cast(max_len, lengths.dtype)), validate=False)


def keep_head_and_tail(ids: tf.RaggedTensor, max_len: int, head: int) -> tf.Tensor:
    """Ragged ids (batch, None) -> (batch, max_len): `head_and_tail`, padded with 0 at the end."""
    return head_and_tail(ids, max_len, head).to_tensor(default_value=0, shape=[None, max_len])


@keras.saving.register_keras_serializable(package="reviewflow")
class TruncatingVectorization(keras.layers.TextVectorization):
    """TextVectorization that keeps the tail, or the head and the tail, of a review longer than `max_len`.

    Tokens are looked up as a ragged batch, so a very long review costs its own tokens, never the batch's
    longest times the batch.
    """

    def __init__(self, max_len: int, truncate: str, **kwargs):
        if truncate not in HEAD_SHARE:
            raise ValueError(f"truncate must be one of {TRUNCATIONS}, got {truncate!r}")
        kwargs.pop("output_sequence_length", None)
        super().__init__(**kwargs)
        self.max_len, self.truncate = max_len, truncate

    def call(self, inputs):
        return keep_head_and_tail(uncut_ids(self, inputs), self.max_len, self.head)

    @property
    def head(self) -> int:
        """Tokens a longer review keeps from its start; the rest of max_len from its end."""
        return int(self.max_len * HEAD_SHARE[self.truncate])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], self.max_len), dtype="int64")

    def get_config(self):
        return {**super().get_config(), "max_len": self.max_len, "truncate": self.truncate}


def ragged_ids(vectorizer: keras.layers.TextVectorization, texts: tf.Tensor) -> tf.RaggedTensor:
    """Texts -> int32 ids (batch, None): what `vectorizer` gives each review, without the padding to its
    max_len. The input pipeline keeps ragged ids (the id cache, the pools); padding them to --max-len and
    cutting it off again cost as much as the lookup."""
    ids = uncut_ids(vectorizer, texts)
    if isinstance(vectorizer, TruncatingVectorization):
        ids = head_and_tail(ids, vectorizer.max_len, vectorizer.head)
    else:  # TextVectorization's own cut keeps the head
        ids = ids[:, :vectorizer._output_sequence_length]
    return tf.cast(ids, tf.int32)


def uncut_ids(vectorizer: keras.layers.TextVectorization, texts: tf.Tensor) -> tf.RaggedTensor:
    """Texts -> ragged ids of every token (batch, None), before any cut to max_len."""
    ids = vectorizer._lookup_layer.call(vectorizer._preprocess(texts))
    return ids if isinstance(ids, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(ids)


def _is_word_character(character: str) -> bool:
    """What NON_WORD_PATTERN keeps: letters, digits and combining marks (\\pL, \\pN, \\pM)."""
    return unicodedata.category(character)[0] in "LNM"


def word_runs(review: str) -> list[tuple[int, int]]:
    """The (start, end) characters of each run of word characters in `review`: where its tokens come from."""
    runs, start = [], None
    for index, character in enumerate(review):
        if _is_word_character(character):
            start = index if start is None else start
        elif start is not None:
            runs.append((start, index))
            start = None
    if start is not None:
        runs.append((start, len(review)))
    return runs


def token_spans(review: str) -> tuple[list[str], list[tuple[int, int]] | None]:
    """`review`'s tokens (as `tokenize` makes them), and the characters of `review` each came from, in order.

    The spans are None where the review's tokens do not follow its runs of word characters: NFKC makes letters
    of a few symbols (™ -> tm), which then join a word; a page can still show the tokens, without their places.
    """
    runs = word_runs(review)
    tokens = tokenize(tf.constant([review, *(review[start:end] for start, end in runs)]))
    whole, per_run = tokens[0].numpy().tolist(), tokens[1:].to_list()
    words = [token.decode("utf-8") for token in whole]
    if [token for run_tokens in per_run for token in run_tokens] != whole:
        return words, None
    return words, [span for span, run_tokens in zip(runs, per_run) for _ in run_tokens]


def kept_positions(num_tokens: int, max_len: int, truncate: str) -> list[int]:
    """Which of a review's `num_tokens` tokens the vectorizer keeps, in order (`head_and_tail`'s rule)."""
    if num_tokens <= max_len:
        return list(range(num_tokens))
    head = int(max_len * HEAD_SHARE[truncate])
    return list(range(head)) + list(range(num_tokens - (max_len - head), num_tokens))
