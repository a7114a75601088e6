"""Pretrained word vectors (fastText `.vec`, GloVe `.txt`; plain, .gz or .bz2), streamed once.

Only the rows whose word is in the data directory's vocabulary are kept, so a
multi-GB file costs one pass and memory for `vocab_size x dim` floats. Words
are standardized exactly as training standardizes text (`text.standardize`):
"Great" in the file meets "great" in `vocab.txt`; when several words of the
file standardize to the same token, the first wins (both formats list the
most frequent words first). A word that standardizes to no token or to
several ("don't" -> "don t") matches nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import text
from pipeline.errors import SourceError
from pipeline.sources import LineReader, TooLongLine

STANDARDIZE_BATCH = 4096
MAX_VECTOR_LINE_BYTES = 1 << 16


@dataclasses.dataclass(frozen=True)
class PretrainedVectors:
    path: str
    dim: int
    matrix: np.ndarray          # (vocab_size, dim); rows of ids not covered are 0
    covered: np.ndarray         # (vocab_size,) bool; padding and [UNK] never are
    lines_read: int

    @property
    def ids_covered(self) -> int:
        return int(self.covered.sum())

    def share_of_ids(self) -> float:
        """Share of the vocabulary's words (padding and [UNK] left out) that have a vector."""
        return self.ids_covered / max(1, len(self.covered) - text.NUM_SPECIAL_TOKENS)

    def share_of_tokens(self, token_counts: list[int] | None, tokens_seen: int) -> float | None:
        """Share of the training split's tokens whose word has a vector (None without the counts)."""
        if token_counts is None or not tokens_seen:
            return None
        words_covered = self.covered[text.NUM_SPECIAL_TOKENS:]
        counts = np.asarray(token_counts, dtype=np.int64)[: len(words_covered)]  # a run may use fewer words
        return float(counts[words_covered[: len(counts)]].sum() / tokens_seen)


def _is_header(fields: list[bytes]) -> bool:
    """fastText's `.vec` opens with `count dim`; GloVe's `.txt` has no such line."""
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def _parse(path: Path, line_number: int, line, dim: int | None) -> tuple[bytes, np.ndarray]:
    if isinstance(line, TooLongLine):
        raise SourceError(f"{path}: line {line_number:,} is over {MAX_VECTOR_LINE_BYTES:,} bytes; this is not a "
                          "word-vectors file (one word and its numbers per line).")
    fields = line.rstrip(b"\r").rstrip().split(b" ")
    try:
        with np.errstate(over="ignore"):  # past float32's range: inf, refused below by name
            values = np.array(fields[1:], dtype=np.float32)
    except ValueError:
        values = None
    if values is None or len(fields) < 2 or (dim is not None and len(values) != dim):
        expected = f"{dim} numbers" if dim is not None else "numbers"
        raise SourceError(f"{path}: line {line_number:,} is not `word` followed by {expected} separated by spaces "
                          f"({line[:60]!r}...). Use a fastText .vec or GloVe .txt file (plain, .gz or .bz2).")
    if not np.isfinite(values).all():  # nan, inf, or past float32's range: training would diverge at once
        word, bad = (field.decode("utf-8", errors="replace")
                     for field in (fields[0][:60], fields[1 + int(np.argmin(np.isfinite(values)))]))
        raise SourceError(f"{path}: line {line_number:,}: the vector of {word!r} holds {bad!r}, not a "
                          "finite float32; the file is damaged or not word vectors. Fix or remove that line.")
    return fields[0], values


def read_vectors(path: Path, vocabulary: list[str]) -> PretrainedVectors:
    """The vectors of the vocabulary's words (ids as the vectorizer gives them: vocabulary[i] -> i + 2)."""
    path = Path(path)
    ids = {token: i + text.NUM_SPECIAL_TOKENS for i, token in enumerate(vocabulary)}
    vocab_size = len(vocabulary) + text.NUM_SPECIAL_TOKENS
    reader = LineReader(path, MAX_VECTOR_LINE_BYTES)
    matrix, covered, dim = None, np.zeros(vocab_size, bool), None
    words, rows = [], []

    def flush():
        tokens = text.standardize(tf.constant(words)).numpy().tolist() if words else []
        for token, row in zip(tokens, rows):
            token_id = ids.get(token.decode("utf-8", errors="replace").strip())
            if token_id is not None and not covered[token_id]:
                matrix[token_id], covered[token_id] = row, True
        words.clear()
        rows.clear()

    for line in reader:
        if reader.lines_read == 1 and not isinstance(line, TooLongLine) and _is_header(line.split()):
            dim = int(line.split()[1])
            continue
        if not isinstance(line, TooLongLine) and not line.strip():
            continue
        word, row = _parse(path, reader.lines_read, line, dim)
        if matrix is None:
            dim = len(row)
            matrix = np.zeros((vocab_size, dim), np.float32)
        words.append(word)
        rows.append(row)
        if len(words) >= STANDARDIZE_BATCH:
            flush()
    if matrix is None:
        raise SourceError(f"{path}: no vectors in the file. Use a fastText .vec or GloVe .txt file.")
    flush()
    return PretrainedVectors(str(path), dim, matrix, covered, reader.lines_read)
