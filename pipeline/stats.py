"""`stats`: label balance, review lengths in tokens and vocabulary coverage, streamed in flat memory.

Lengths are kept as a histogram (length -> count), so percentiles are exact and
memory holds one counter per distinct length, not one per review.

A data directory's stats come from its manifest alone (`reads_only_the_manifest`): TensorFlow, ~4 s to
start, is imported only where reviews are read (a raw file, or a directory sharded before the manifest kept
lengths), by the functions that read them.
"""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from pipeline import formats, text_settings
from pipeline.formats import FormatSettings
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.labels import MIN_CLASS_EXAMPLES, ClassTable, check_class_rule, natural_order
from pipeline.manifest import MANIFEST_FILE
from pipeline.ownership import MARKER_FILE
from pipeline.rejects import Reject, reasons_text

if TYPE_CHECKING:
    import tensorflow as tf

    from pipeline.vocab import TokenCounter

BATCH = 4096
SHARE_LENGTHS = tuple(range(100, 1000, 50))   # the reference study's padding table: 100, 150, ..., 950
PERCENTILES = (50, 75, 90, 95, 99)


@dataclasses.dataclass
class SplitStats:
    num_examples: int = 0
    label_counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    lengths: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    rejected: collections.Counter = dataclasses.field(default_factory=collections.Counter)  # raw file: by reason

    def percentile(self, q: float) -> int:
        """The smallest length L such that at least q% of reviews have at most L tokens."""
        values = np.array(sorted(self.lengths))
        cumulative = np.cumsum([self.lengths[v] for v in values])
        return int(values[np.searchsorted(cumulative, q / 100 * cumulative[-1])])

    def share_at_most(self, length: int) -> float:
        return sum(c for v, c in self.lengths.items() if v <= length) / max(1, self.num_examples)


@dataclasses.dataclass
class CorpusStats:
    splits: dict[str, SplitStats]
    coverage: float          # share of (training) tokens covered by the top vocab_size - 2 tokens
    vocab_size: int

    def training_lengths(self) -> dict[int, int]:
        """The lengths `fit` chooses --max-len from: the train split's (a raw file's own)."""
        split = self.splits.get("train") or next(iter(self.splits.values()))
        return dict(split.lengths)


@dataclasses.dataclass(frozen=True)
class ClassRule:
    """shard's --classes and --min-class-examples, by which `stats FILE` counts what shard would write."""
    classes: tuple[str, ...] | None = None
    min_examples: int = MIN_CLASS_EXAMPLES

    def __post_init__(self):
        check_class_rule(self.classes, self.min_examples)


def open_source(path: Path) -> Path | DataDir:
    """What `stats` describes: a data directory, opened (refused if it is broken or incomplete), or a raw source:
    a file, or a directory of class folders (neither `shard`'s marker nor a manifest in it)."""
    path = Path(path)
    if path.is_dir() and any((path / name).exists() for name in (MARKER_FILE, MANIFEST_FILE)):
        return DataDir.open(path)
    return path


def reads_only_the_manifest(source: Path | DataDir) -> bool:
    """Whether `corpus_stats(source)` needs nothing but a manifest: a data directory whose every split's lengths
    `shard` recorded."""
    return isinstance(source, DataDir) and all(split.lengths() is not None
                                               for split in source.manifest.splits.values())


def _batches_from_data_dir(data: DataDir, split: str) -> Iterator[tuple[tf.Tensor, np.ndarray]]:
    from pipeline import dataset
    from pipeline.vocab import COUNT_BATCH_BYTES

    names = np.array(data.classes.names, dtype=object)
    batch_size = dataset.examples_within(data, split, COUNT_BATCH_BYTES, BATCH)  # as a raw file's batches
    for texts, labels in dataset.make_text_dataset(data, split, batch_size):
        yield texts, names[dataset.class_ids(labels)]


def _batches_from_file(path: Path, counter: TokenCounter, rejected: collections.Counter,
                       format_settings: FormatSettings, class_rule: ClassRule
                       ) -> Iterator[tuple[tf.Tensor, np.ndarray]]:
    """The records of a raw file (fastText, CSV, TSV, JSONL, Parquet) that `shard` would write, in batches;
    their tokens counted for coverage, the others in `rejected` by reason."""
    import tensorflow as tf

    from pipeline.vocab import COUNT_BATCH_BYTES

    texts, labels, num_bytes = [], [], 0
    for label, review in _records_shard_would_write(path, rejected, format_settings, class_rule):
        labels.append(label)
        texts.append(review)
        num_bytes += len(review)
        if len(texts) >= BATCH or num_bytes >= COUNT_BATCH_BYTES:  # as shard's counting batches
            counter.add(texts)
            yield tf.constant(texts), np.array(labels)
            texts, labels, num_bytes = [], [], 0
    if texts:
        counter.add(texts)
        yield tf.constant(texts), np.array(labels)


def _records_shard_would_write(path: Path, rejected: collections.Counter, format_settings: FormatSettings,
                               class_rule: ClassRule) -> Iterator[tuple[str, bytes]]:
    """(label, review) of each valid record, by shard's class rule (`ClassTable`): a label outside --classes, or
    seen fewer than --min-class-examples times (a typo or a stray line), is rejected as bad_label."""
    table = ClassTable(class_rule.min_examples, class_rule.classes)
    for record in formats.open_records(path, format_settings):
        parsed = record.parsed
        if not isinstance(parsed, tuple):
            rejected[parsed.value] += 1
            continue
        admitted = table.admit(parsed[0], parsed, len(parsed[1]))
        if admitted is None:
            rejected[Reject.BAD_LABEL.value] += 1
        yield from admitted or ()
    held, rare = table.freeze()
    if rare:
        rejected[Reject.BAD_LABEL.value] += len(rare)
    yield from held


def _accumulate(batches) -> SplitStats:
    from pipeline import text

    stats = SplitStats()
    for texts, labels in batches:
        text.add_lengths(stats.lengths, text.token_lengths(texts).numpy())
        stats.label_counts.update(labels.tolist())
        stats.num_examples += len(labels)
    return stats


def from_manifest(split, classes) -> SplitStats | None:
    """A split's stats as `shard` recorded them (no pass over the data); None for an older directory."""
    lengths = split.lengths()
    if lengths is None:
        return None
    labels = collections.Counter({classes.names[int(label)]: count for label, count in split.label_counts.items()})
    return SplitStats(split.num_examples, labels, collections.Counter(lengths))


def corpus_stats(source: Path | DataDir, read_shards: bool = False, format_settings: FormatSettings | None = None,
                 class_rule: ClassRule = ClassRule()) -> CorpusStats:
    """Stats of a data directory (every split; opened, or a path) or of a raw file (the lines shard would write,
    read as `format_settings` say: by default, its format from its name and the usual field names; its classes by
    `class_rule`, shard's defaults unless given; a directory's manifest says how its files were read).

    A data directory's lengths come from its manifest; one sharded before the manifest kept them (or
    `read_shards`) is read through once.
    """
    if not isinstance(source, DataDir):
        source = open_source(source)
    if isinstance(source, DataDir):
        data = source
        splits = {split: (None if read_shards else from_manifest(info, data.classes)) or
                  _accumulate(_batches_from_data_dir(data, split)) for split, info in data.manifest.splits.items()}
        return CorpusStats(splits, data.manifest.vocabulary.coverage, data.manifest.vocabulary.size)
    from pipeline.vocab import TokenCounter

    path = Path(source)
    counter, rejected = TokenCounter(), collections.Counter()
    split = _accumulate(_batches_from_file(path, counter, rejected, format_settings or FormatSettings(), class_rule))
    counter.close()
    split.rejected = rejected
    if not split.num_examples:
        found = (f"every record was rejected ({reasons_text(dict(rejected.most_common()))})" if rejected
                 else "it is empty")
        raise ReviewflowError(f"{path}: no review to describe: {found}. Check its format (fastText: "
                              "`__label__NAME text` per line; --format, --text-field, --label-field), or shard it "
                              "to see each line's reason.")
    kept = counter.most_common(text_settings.SHARD_VOCAB_SIZE - text_settings.NUM_SPECIAL_TOKENS)
    coverage = sum(count for _, count in kept) / counter.num_tokens if counter.num_tokens else 0.0
    return CorpusStats({path.name: split}, coverage, len(kept) + text_settings.NUM_SPECIAL_TOKENS)


def summary_lines(stats: CorpusStats) -> list[str]:
    """What `stats` prints: per split the balance, length percentiles and shares; coverage; advice."""
    lines = []
    for name, split in stats.splits.items():
        lines.append(f"{name}: {split.num_examples:,} reviews, {balance_text(split)}")
        lines.append("  length in tokens: " + ", ".join(f"p{q} {split.percentile(q)}" for q in PERCENTILES)
                     + f", max {max(split.lengths)}")
        lines += [f"  share of reviews with at most {length} tokens: {split.share_at_most(length):.2%}"
                  for length in SHARE_LENGTHS]
        if split.rejected:
            lines.append(f"  not counted (shard would reject them): {reasons_text(dict(split.rejected.most_common()))}")
    lines.append(f"vocabulary of {stats.vocab_size:,} ids covers {stats.coverage:.2%} of (training) tokens")
    return lines


def balance_text(split: SplitStats) -> str:
    """`negative 40 / positive 60 (60.0% positive)` for Amazon polarity's labels, else each class's share."""
    counts, total = split.label_counts, max(1, split.num_examples)
    if set(counts) <= {"1", "2"}:
        negative, positive = counts["1"], counts["2"]
        return f"negative {negative:,} / positive {positive:,} ({positive / total:.1%} positive)"
    return ", ".join(f"{name} {counts[name]:,} ({counts[name] / total:.1%})" for name in natural_order(counts))


def plot_lengths(stats: CorpusStats, path: Path, max_len: int) -> None:
    """A histogram of review lengths per split, with a --max-len marked."""
    from pipeline import plots  # matplotlib: only for --plot

    plots.plot_length_histograms({name: split.lengths for name, split in stats.splits.items()}, max_len, path)
