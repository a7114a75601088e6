"""Streaming token counts -> `vocab.txt`, ordered exactly as `TextVectorization.adapt` orders it."""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path

import tensorflow as tf

from pipeline import atomic, text
from pipeline.manifest import VocabularyInfo
from pipeline.shards import file_sha256

VOCAB_FILE = "vocab.txt"
COUNTS_FILE = "vocab_counts.txt"   # line i: the training count of vocab.txt's line i
MAX_BATCHES_IN_FLIGHT = 2  # bounds memory: at most this many text batches wait for counting


def count_tokens(texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(distinct tokens, their counts) in a batch of texts, tokenized exactly as training tokenizes."""
    unique, _, counts = tf.unique_with_counts(text.tokenize(texts).flat_values, out_idx=tf.int64)
    return unique, counts


class TokenCounter:
    """Counts the training split's tokens, and every split's review lengths, in a background thread.

    Tokenizing, counting within a batch and adding to the running totals are
    all TensorFlow ops, which release the GIL: counting overlaps with parsing
    and writing on the main thread. Memory holds one count per distinct token
    (which grows far slower than the corpus), one per distinct review length,
    and a bounded queue of batches. Each text is tokenized once for both.
    """

    def __init__(self):
        self._table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._add = tf.function(self._add_batch, input_signature=[tf.TensorSpec([None], tf.string)])
        self._counts: collections.Counter[bytes] | None = None
        self.lengths: dict[str, dict[int, int]] = {}  # split -> {length in tokens: reviews}

    def _add_batch(self, texts):
        tokens = text.tokenize(texts)
        unique, _, counts = tf.unique_with_counts(tokens.flat_values, out_idx=tf.int64)
        self._table.insert(unique, self._table.lookup(unique) + counts)
        return tokens.row_lengths()

    def _count(self, texts: tf.Tensor, split: str) -> None:
        """In the counting thread: tokens (of the training split only) and lengths."""
        lengths = self._add(texts) if split == "train" else text.token_lengths(texts)
        text.add_lengths(self.lengths.setdefault(split, {}), lengths.numpy())

    def add(self, texts: list[bytes], split: str = "train") -> None:
        """Queue a batch of raw texts of `split` for counting; blocks while too many wait."""
        if not texts:
            return
        while len(self._pending) >= MAX_BATCHES_IN_FLIGHT:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._count, tf.constant(texts), split))
        self._counts = None

    def close(self) -> None:
        """Wait for every queued batch; re-raises the first error of the counting thread."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def counts(self) -> collections.Counter[bytes]:
        """Token -> count, once every batch is counted."""
        if self._counts is None:
            tokens, counts = self._table.export()
            self._counts = collections.Counter(dict(zip(tokens.numpy().tolist(), counts.numpy().tolist())))
        return self._counts

    @property
    def num_tokens(self) -> int:
        return sum(self.counts.values())

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


def write_vocabulary_file(out: Path, ranked: list[tuple[str, int]], distinct_tokens: int,
                          num_tokens: int) -> VocabularyInfo:
    """Write `vocab.txt` from (token, count) pairs, most frequent first, and describe it for the manifest."""
    path = Path(out) / VOCAB_FILE
    write_vocabulary(path, [token for token, _ in ranked])
    atomic.write_text(Path(out) / COUNTS_FILE, "".join(f"{count}\n" for _, count in ranked))
    covered = sum(count for _, count in ranked)
    return VocabularyInfo(
        path=VOCAB_FILE,
        size=len(ranked) + text.NUM_SPECIAL_TOKENS,
        num_tokens_in_file=len(ranked),
        sha256=file_sha256(path),
        distinct_tokens_seen=distinct_tokens,
        tokens_seen=num_tokens,
        coverage=round(covered / num_tokens, 6) if num_tokens else 0.0,
        counts_path=COUNTS_FILE,
    )
