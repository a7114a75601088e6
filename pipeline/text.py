"""The one definition of tokenization: `standardize`, `tokenize` and the vectorizer.

The vocabulary pass in `shard`, training's `TextVectorization`, and every
command that tokenizes all call these functions, so they cannot disagree.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_text as tf_text

DEFAULT_VOCAB_SIZE = 8192   # TextVectorization max_tokens: padding + [UNK] + 8190 words
DEFAULT_MAX_LEN = 128
NUM_SPECIAL_TOKENS = 2      # "" (padding, id 0) and "[UNK]" (id 1)

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


def make_vectorizer(vocabulary: list[str], max_len: int = DEFAULT_MAX_LEN) -> keras.layers.TextVectorization:
    """Strings -> int ids padded (at the end) or truncated to `max_len`; 0 is padding, 1 unknown."""
    return keras.layers.TextVectorization(
        standardize=standardize,
        split="whitespace",
        output_mode="int",
        output_sequence_length=max_len,
        vocabulary=vocabulary,
        name="vectorizer",
    )
