"""Streaming token counts -> `vocab.txt`, ordered exactly as `TextVectorization.adapt` orders it."""

from __future__ import annotations

import collections
import concurrent.futures
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import atomic, text
from pipeline.manifest import VocabularyInfo
from pipeline.shard.writer import file_sha256

VOCAB_FILE = "vocab.txt"
COUNTS_FILE = "vocab_counts.txt"   # line i: the training count of vocab.txt's line i
MAX_BATCHES_IN_FLIGHT = 2  # bounds memory: at most this many text batches wait for counting
# Distinct training tokens counted exactly, at most; more are pruned. At 1M the table and its export at the
# end cost ~350 MiB of peak memory above a normal run (benchmarks/faults.py unique-tokens).
MAX_DISTINCT_TOKENS = 1_000_000
# The most text a counting batch holds (fewer reviews than a runner's batch, where they are long): tokenizing
# takes ~10x a batch's bytes, and 4096 reviews of 1 MiB (the longest a record may be) made shard abort on
# std::bad_alloc at 20 GB.
COUNT_BATCH_BYTES = 4 << 20


def count_tokens(texts: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(distinct tokens, their counts) in a batch of texts, tokenized exactly as training tokenizes."""
    unique, _, counts = tf.unique_with_counts(text.tokenize(texts).flat_values, out_idx=tf.int64)
    return unique, counts


class TokenCounter:
    """Counts the training split's tokens, and every split's review lengths, in a background thread.

    Tokenizing, counting within a batch and adding to the running totals are
    all TensorFlow ops, which release the GIL: counting overlaps with parsing
    and writing on the main thread. Memory holds at most `max_distinct` counts
    (one per distinct token), one per distinct review length, and a bounded
    queue of batches. Each text is tokenized once for both.

    Counts are exact while the distinct tokens fit `max_distinct`. A corpus with
    more (typos, ids, a hostile file of unique tokens) is pruned to the most
    frequent half each time the table fills, a lossy count (Manku and Motwani
    2002): a kept token's count is then low by at most `count_error`, the sum of
    the largest count each pruning dropped, and a token above that is never lost.
    """

    def __init__(self, max_distinct: int = MAX_DISTINCT_TOKENS):
        self.max_distinct = max_distinct
        self._table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._add = tf.function(self._add_batch, input_signature=[tf.TensorSpec([None], tf.string)])
        self.lengths: dict[str, dict[int, int]] = {}  # split -> {length in tokens: reviews}
        self.num_tokens = 0       # training tokens seen, pruned ones included
        self.distinct_seen = 0    # distinct training tokens (a lower bound once pruned)
        self.count_error = 0      # 0: every count exact; else the most a kept count may be low by
        self._exported: tuple[np.ndarray, np.ndarray] | None = None

    def _add_batch(self, texts):
        tokens = text.tokenize(texts)
        unique, _, counts = tf.unique_with_counts(tokens.flat_values, out_idx=tf.int64)
        self._table.insert(unique, self._table.lookup(unique) + counts)
        return tokens.row_lengths(), tf.reduce_sum(counts)

    def _count(self, texts: tf.Tensor, split: str) -> None:
        """In the counting thread: tokens (of the training split only) and lengths."""
        if split == "train":
            lengths, num_tokens = self._add(texts)
            self.num_tokens += int(num_tokens)
            if int(self._table.size()) > self.max_distinct:
                self._prune()
        else:
            lengths = text.token_lengths(texts)
        text.add_lengths(self.lengths.setdefault(split, {}), lengths.numpy())

    def _prune(self) -> None:
        """Keep the most frequent half of the table; remember how large a dropped count was."""
        tokens, counts = self._table.export()
        counts = counts.numpy()
        self.distinct_seen = max(self.distinct_seen, len(counts))
        keep = self.max_distinct // 2
        order = np.argpartition(-counts, keep)
        dropped = order[keep:]
        self.count_error += int(counts[dropped].max())
        self._table.remove(tf.gather(tokens, dropped))

    def add(self, texts: list[bytes], split: str = "train") -> None:
        """Queue a batch of raw texts of `split` for counting; blocks while too many wait."""
        if not texts:
            return
        while len(self._pending) >= MAX_BATCHES_IN_FLIGHT:
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(self._count, tf.constant(texts), split))
        self._exported = None

    def close(self) -> None:
        """Wait for every queued batch; re-raises the first error of the counting thread."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _export(self) -> tuple[np.ndarray, np.ndarray]:
        if self._exported is None:
            tokens, counts = self._table.export()
            self._exported = tokens.numpy(), counts.numpy()
        return self._exported

    @property
    def num_distinct(self) -> int:
        """Distinct training tokens seen (exact unless pruned: then at least this many)."""
        return max(self.distinct_seen, len(self._export()[1]))

    @property
    def counts(self) -> collections.Counter[bytes]:
        """Token -> count, once every batch is counted (small corpora and tests: it holds every token)."""
        tokens, counts = self._export()
        return collections.Counter(dict(zip(tokens.tolist(), counts.tolist())))

    def most_common(self, num_tokens: int) -> list[tuple[str, int]]:
        """The `num_tokens` most frequent tokens with their counts, in adapt's order."""
        tokens, counts = self._export()
        if len(counts) > num_tokens:  # only the candidates: every token at or above the cut's count
            cut = np.partition(counts, len(counts) - num_tokens)[len(counts) - num_tokens]
            chosen = counts >= cut
            tokens, counts = tokens[chosen], counts[chosen]
        # TextVectorization.adapt sorts by count, ties broken by the token's
        # bytes, descending (np.lexsort reversed); do the same so they agree.
        ranked = sorted(zip(counts.tolist(), tokens.tolist()), reverse=True)
        return [(token.decode("utf-8"), count) for count, token in ranked[:num_tokens]]


def write_vocabulary(path: Path, tokens: list[str]) -> None:
    """One token per line, most frequent first, without the padding and [UNK] entries."""
    atomic.write_text(path, "".join(token + "\n" for token in tokens))


def read_vocabulary(path: Path) -> list[str]:
    """The tokens of a `vocab.txt`, in order."""
    return Path(path).read_text(encoding="utf-8").splitlines()


def write_vocabulary_file(out: Path, ranked: list[tuple[str, int]], distinct_tokens: int,
                          num_tokens: int, count_error: int = 0) -> VocabularyInfo:
    """Write `vocab.txt` from (token, count) pairs, most frequent first, and describe it for the manifest.

    `count_error` > 0: the counts were pruned (`TokenCounter`) and each may be low by up to that much.
    """
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
        counts_sha256=file_sha256(Path(out) / COUNTS_FILE),
        count_error=count_error,
    )
