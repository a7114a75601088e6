"""Streaming token counts -> `vocab.txt`, ordered exactly as `TextVectorization.adapt` orders it."""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path

import tensorflow as tf

from pipeline import atomic, text

VOCAB_FILE = "vocab.txt"
MAX_BATCHES_IN_FLIGHT = 2  # bounds memory: at most this many text batches wait for counting


@tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
def _count_tokens(texts):
    tokens = text.tokenize(texts).flat_values
    unique, _, counts = tf.unique_with_counts(tokens, out_idx=tf.int64)
    return unique, counts


class VocabularyCounter:
    """Counts tokens of text batches in a background thread.

    The TensorFlow ops release the GIL, so counting overlaps with parsing and
    writing on the main thread. Memory holds one count per distinct token
    (which grows far slower than the corpus) plus a bounded queue of batches.
    """

    def __init__(self):
        self.counts: collections.Counter[bytes] = collections.Counter()
        self.num_tokens = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()

    def add(self, texts: list[bytes]) -> None:
        """Queue a batch of raw texts for counting; blocks while too many wait."""
        if not texts:
            return
        while len(self._pending) >= MAX_BATCHES_IN_FLIGHT:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._count, texts))

    def _count(self, texts: list[bytes]) -> None:
        unique, counts = _count_tokens(tf.constant(texts))
        counts = counts.numpy().tolist()
        self.counts.update(dict(zip(unique.numpy().tolist(), counts)))
        self.num_tokens += sum(counts)

    def close(self) -> None:
        """Wait for every queued batch; re-raises the first error of the counting thread."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def most_common(self, num_tokens: int) -> list[tuple[str, int]]:
        """The `num_tokens` most frequent tokens with their counts, in adapt's order."""
        # TextVectorization.adapt sorts by count, ties broken by the token's
        # bytes, descending (np.lexsort reversed); do the same so they agree.
        ranked = sorted(self.counts.items(), key=lambda item: (item[1], item[0]), reverse=True)
        return [(token.decode("utf-8"), count) for token, count in ranked[:num_tokens]]


def write_vocabulary(path: Path, tokens: list[str]) -> None:
    """One token per line, most frequent first, without the padding and [UNK] entries."""
    atomic.write_text(path, "".join(token + "\n" for token in tokens))


def read_vocabulary(path: Path) -> list[str]:
    """The tokens of a `vocab.txt`, in order."""
    return Path(path).read_text(encoding="utf-8").splitlines()
