"""The shard job's plan, shared by both runners: settings, shards per split, where a line goes,
the checks every run must pass, and the manifest's assembly.

The local runner (`local.py`) and the Beam runner (`beam.py`) both
build on this module and import nothing of each other.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path

from pipeline import formats, labels, manifest as manifest_lib, sources, text
from pipeline.formats import FormatSettings
from pipeline.errors import ReviewflowError, SourceError
from pipeline import rejects
from pipeline.rejects import REJECTS_FILE

RUNNERS = ("local", "beam")
SPLITS = ("train", "validation", "test")
COMPRESSIONS = ("none", "gzip")
TARGET_SHARD_BYTES = 128 << 20  # ~128 MiB of text per shard: big reads, enough files to interleave
MAX_SHARDS = 4096
# Decompressed size of English text per compressed byte, to plan shards before reading.
EXPANSION_ESTIMATE = {"bz2": 3.5, "gzip": 3.0, "none": 1.0}
_HASH_SCALE = float(1 << 64)
# Beam's runner reads Amazon polarity's two fastText classes; the local runner reads every format and label.
BEAM_FORMATS = ("fasttext",)


@dataclasses.dataclass(frozen=True)
class ShardSettings:
    train: Path
    test: Path | None                   # the held-out file; None: --test-fraction of the training file
    out: Path
    num_shards: int | None = None       # per split; None plans by size
    val_fraction: float = 0.2
    vocab_size: int = text.SHARD_VOCAB_SIZE
    compression: str = "none"           # "none" or "gzip"
    seed: int = 0
    overwrite: bool = False
    max_line_bytes: int = sources.DEFAULT_MAX_LINE_BYTES
    parallelism: int | None = None      # bzip2 decoder threads; None: all cores
    runner: str = "local"               # "local" (this process) or "beam" (an Apache Beam pipeline)
    beam_options: tuple[str, ...] = ()  # Beam pipeline options, e.g. ("--runner=DataflowRunner",)
    format: str | None = None           # fasttext, csv, tsv, jsonl, parquet; None: from each file's name
    text_field: str | None = None       # None: the first of formats.TEXT_FIELDS the file has
    label_field: str | None = None      # None: the first of formats.LABEL_FIELDS the file has
    classes: tuple[str, ...] | None = None  # the class names to keep; None: every label of the training file
    positive_class: str | None = None   # two classes: whose probability the model outputs; None: the later one
    min_class_examples: int = labels.MIN_CLASS_EXAMPLES
    max_rejects_kept: int = rejects.MAX_REJECTS_KEPT  # rejects.jsonl keeps this many whole; the rest are counted
    test_fraction: float = 0.0          # share of the training file held out as the test split (no --test file)

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ReviewflowError(f"--val-fraction must be in [0, 1), got {self.val_fraction}.")
        if self.test is not None and self.test_fraction:
            raise ReviewflowError("Give the test split either as a file of its own (--test FILE, e.g. Amazon "
                                  "polarity's test.ft.txt.bz2) or as a share of the training file (--test-fraction "
                                  "0.2, for a corpus that comes as one file), not both.")
        if self.test is None and not self.test_fraction:
            raise ReviewflowError("Give --test FILE (a held-out file) or --test-fraction F (a share of the "
                                  "training file, e.g. 0.2, for a corpus that comes as one file).")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ReviewflowError(f"--test-fraction must be in (0, 1), got {self.test_fraction}.")
        if self.vocab_size <= text.NUM_SPECIAL_TOKENS:
            raise ReviewflowError(f"--vocab-size must be above {text.NUM_SPECIAL_TOKENS}.")
        if self.compression not in COMPRESSIONS:
            raise ReviewflowError(f"--compression must be one of {COMPRESSIONS}.")
        if self.runner not in RUNNERS:
            raise ReviewflowError(f"--runner must be one of {RUNNERS}.")
        if self.beam_options and self.runner != "beam":
            raise ReviewflowError("--beam-option is for --runner beam.")
        if self.format is not None and self.format not in formats.FORMATS:
            raise ReviewflowError(f"--format must be one of {formats.FORMATS}.")
        labels.check_class_rule(self.classes, self.min_class_examples)

    def format_settings(self) -> FormatSettings:
        return FormatSettings(self.format, self.text_field, self.label_field, self.max_line_bytes, self.parallelism)

    def format_of(self, path: Path) -> str:
        return formats.format_of(path, self.format_settings())

    def sources(self) -> dict[str, Path]:
        """Source name -> path, in the order they are read."""
        return {"train": Path(self.train), **({"test": Path(self.test)} if self.test is not None else {})}

    def source_splits(self, source_name: str) -> list[str]:
        """The splits a source's lines go to: the training file feeds train and validation (and test, under
        --test-fraction), the test file test."""
        if source_name == "test":
            return ["test"]
        return ["train", "validation"] + (["test"] if self.test_fraction else [])

    def to_json(self) -> dict:
        """The settings that shaped the output (paths as given)."""
        return {field.name: (str(value) if isinstance(value, Path) else value)
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
                if field.name not in ("overwrite", "parallelism", "beam_options")}

    def check_runner_reads(self) -> None:
        """Refuse what the Beam runner cannot read, before anything is written."""
        if self.runner != "beam":
            return
        formats = {self.format_of(path) for path in self.sources().values()}
        if formats - set(BEAM_FORMATS) or self.classes or self.positive_class:
            raise ReviewflowError("--runner beam reads fastText files with Amazon polarity's two labels "
                                  "(__label__1, __label__2) only; for CSV, TSV, JSON lines, Parquet, class folders "
                                  "or other classes use --runner local (one pass, flat memory).")


def plan_num_shards(estimated_bytes: float, target_shard_bytes: int = TARGET_SHARD_BYTES) -> int:
    """Shards for a split of about `estimated_bytes` of text: one per target size, at least 1."""
    return max(1, min(MAX_SHARDS, math.ceil(estimated_bytes / target_shard_bytes)))


def estimate_text_bytes(source_bytes: int, compression: str) -> float:
    """Rough decompressed size of a source, from its size on disk."""
    return source_bytes * EXPANSION_ESTIMATE[compression]


def estimate_source_bytes(path: Path) -> float:
    """Rough decompressed size of the source at `path` (a file, or a folder corpus)."""
    return estimate_text_bytes(sources.source_bytes(path), sources.source_compression(path))


def hash_share(label_key: bytes | int, text: bytes, seed: int) -> float:
    """An example's place in [0, 1) for holding it out: a keyed hash of its label and content.

    Independent of order and shard count, and identical lines always land in
    the same split, so exact duplicates never leak from train into validation or test.
    `label_key` is `labels.split_key(label)` (a record id of 0 or 1 keys as b"0" or b"1").
    """
    key = label_key if isinstance(label_key, bytes) else str(label_key).encode()
    digest = hashlib.blake2b(text, digest_size=8, key=b"%d:%s" % (seed, key)).digest()
    return int.from_bytes(digest, "little") / _HASH_SCALE


def split_by_share(share: float, val_fraction: float, test_fraction: float) -> str:
    """The split of a training file's example at `share`: the lowest `test_fraction` is test, then
    `val_fraction` of the rest validation (with a test file of its own: the lowest `val_fraction`)."""
    if share < test_fraction:
        return "test"
    return "validation" if share < test_fraction + (1 - test_fraction) * val_fraction else "train"


def plan_split_shards(settings: ShardSettings) -> dict[str, int]:
    """Number of shards per split: `num_shards` for each if given, else by estimated size."""
    if settings.num_shards:
        return {split: settings.num_shards for split in SPLITS}
    file_bytes = estimate_source_bytes(settings.train)
    test_bytes = file_bytes * settings.test_fraction if settings.test is None else estimate_source_bytes(settings.test)
    train_bytes = file_bytes * (1 - settings.test_fraction)
    return {
        "train": plan_num_shards(train_bytes * (1 - settings.val_fraction)),
        "validation": plan_num_shards(train_bytes * settings.val_fraction),
        "test": plan_num_shards(test_bytes),
    }


# File descriptors kept free for everything else a shard run opens (sources, TensorFlow, Python, the rejects).
RESERVED_OPEN_FILES = 128


def check_open_files(settings: ShardSettings) -> None:
    """Refuse a `--num-shards` whose files, open together while writing, exceed the process's limit: the run
    failed partway with "Too many open files", after writing thousands of files."""
    import resource

    num_files = sum(plan_split_shards(settings).values())
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit != resource.RLIM_INFINITY and num_files > limit - RESERVED_OPEN_FILES:
        raise ReviewflowError(f"--num-shards {settings.num_shards}: {num_files:,} shard files (every split's) would be "
                              f"open at once while writing, and this process may open {limit:,} files (`ulimit "
                              "-n`). Give fewer shards (the default: one per ~128 MiB of text), or raise the limit.")


def split_of(source_name: str, label: str, text_bytes: bytes, settings: ShardSettings) -> str:
    """The split a valid record of a source goes to."""
    if source_name == "test":
        return "test"
    share = hash_share(labels.split_key(label), text_bytes, settings.seed)
    return split_by_share(share, settings.val_fraction, settings.test_fraction)


def check_sources(settings: ShardSettings) -> None:
    """Refuse missing sources, the same file given as --train and --test (its reviews would leak), and a source
    whose first record cannot be read (a damaged compressed file, a header without the fields, not Parquet)."""
    for path in settings.sources().values():
        sources.refuse_not_a_source(path)
    train, test = settings.train, settings.test
    if test is not None and (os.path.samefile(train, test) or (
            sources.source_bytes(train) == sources.source_bytes(test)
            and sources.source_sha256(train) == sources.source_sha256(test))):
        raise SourceError(f"{train} and {test} are the same file (same path or same sha256): test reviews would "
                          "also be trained on, and every test score would be inflated. Give --test a held-out "
                          "file (for Amazon polarity: test.ft.txt.bz2), or give --test-fraction instead of --test "
                          "for a corpus that comes as one file.")
    for path in settings.sources().values():  # before --overwrite deletes anything: each opens, has its fields
        next(iter(formats.open_records(path, settings.format_settings())), None)


def check_source_has_examples(source: manifest_lib.SourceInfo, first_reject: str | None) -> None:
    """A source of which no record is a valid review is the wrong file or the wrong format: stop."""
    if source.written:
        return
    unit = manifest_lib.record_unit(source.format)
    if source.lines_read == 0:
        what = "directory" if source.format == "folders" else "file"
        raise SourceError(f"{source.path}: the {what} holds no {unit}. {formats.READERS[source.format].help}")
    shown = json.loads(first_reject) if first_reject else {}
    raise SourceError(
        f"{source.path}: none of its {source.lines_read:,} {unit} is a valid review; the first, line "
        f"{shown.get('line', '?')}, was rejected as {shown.get('reason', '?')}: {shown.get('raw', '')[:120]!r}. "
        f"{formats.READERS[source.format].help} Nothing was written.")


def check_train_split(num_train_examples: int, settings: ShardSettings) -> None:
    if num_train_examples == 0:
        held_out = f"--val-fraction {settings.val_fraction}" + (
            f" and --test-fraction {settings.test_fraction}" if settings.test_fraction else "")
        raise ReviewflowError(f"{settings.train}: no example went to the train split ({held_out} held out all of "
                              "them). Lower them or give more reviews. Nothing was written.")


def assemble_manifest(settings: ShardSettings, splits: dict[str, manifest_lib.SplitInfo],
                      source_infos: list[manifest_lib.SourceInfo], vocabulary: manifest_lib.VocabularyInfo,
                      num_rejected: int, started: float,
                      classes: labels.ClassesInfo = labels.LEGACY_CLASSES,
                      rejects_kept: int | None = None) -> manifest_lib.Manifest:
    """The manifest of a finished run, after the checks every run must pass."""
    for source in source_infos:
        if source.lines_read != source.written + sum(source.rejected.values()):
            raise ReviewflowError(f"{source.path}: read {source.lines_read:,} lines but accounted for "
                                  f"{source.written + sum(source.rejected.values()):,}; nothing was marked "
                                  "complete. Run again.")
    check_classes_trained(settings, splits["train"], classes)
    return manifest_lib.Manifest(
        format_version=manifest_lib.FORMAT_VERSION,
        settings=settings.to_json(),
        splits=splits,
        sources=source_infos,
        vocabulary=vocabulary,
        rejects_path=REJECTS_FILE,
        num_rejected=num_rejected,
        seconds=round(time.perf_counter() - started, 3),
        classes=classes,
        rejects_kept=num_rejected if rejects_kept is None else rejects_kept,
    )


def check_classes_trained(settings: ShardSettings, train: manifest_lib.SplitInfo, classes: labels.ClassesInfo) -> None:
    """Refuse a class of which no example went to the train split: no model could learn it.

    Identical texts hash to one split, so a "class" made of one repeated corrupt line lands whole in
    validation (or the test file alone holds it).
    """
    untrained = [name for index, name in enumerate(classes.names) if not train.label_counts.get(str(index))]
    if untrained:
        kept = [name for name in classes.names if name not in untrained]
        raise ReviewflowError(
            f"{settings.train}: class(es) {', '.join(map(repr, untrained))} have no example in the train split "
            "(all their lines went to validation: one repeated line?), so no model can learn them. Keep the "
            f"real classes with --classes {','.join(kept) or 'A,B'} (other labels' lines are then rejected), or "
            "raise --min-class-examples. Nothing was written.")


def class_warnings(manifest: manifest_lib.Manifest) -> list[str]:
    """A warning for each class far rarer in the train split than the largest (a stray label, kept as a class)."""
    classes = manifest.class_info()
    counts = [manifest.splits["train"].label_counts.get(str(index), 0) for index in range(classes.num_classes)]
    largest = max(counts, default=0)
    return [f"warning: class {name!r} has {count:,} training examples, {count / largest:.2%} of the largest "
            f"class's {largest:,}; if it is no real class, re-shard with --classes "
            f"{','.join(other for other in classes.names if other != name)}."
            for name, count in zip(classes.names, counts) if largest and count < labels.RARE_CLASS_SHARE * largest]
