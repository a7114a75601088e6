"""The shard job's plan, shared by both runners: settings, shards per split, where a line goes,
the checks every run must pass, and the manifest's assembly.

The local runner (`local_shard.py`) and the Beam runner (`beam_shard.py`) both
build on this module and import nothing of each other.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

from pipeline import manifest as manifest_lib, shards, sources, text
from pipeline.errors import ReviewflowError, SourceError
from pipeline.rejects import REJECTS_FILE

RUNNERS = ("local", "beam")
# The two sources of a shard run: the training file feeds train and validation, the test file test.
SOURCE_SPLITS = {"train": ["train", "validation"], "test": ["test"]}
FORMAT_HELP = ("Each line must be `__label__1 <text>` (negative) or `__label__2 <text>` (positive): "
               "fastText's format, as in the Amazon Reviews polarity files.")


@dataclasses.dataclass(frozen=True)
class ShardSettings:
    train: Path
    test: Path
    out: Path
    num_shards: int | None = None       # per split; None plans by size
    val_fraction: float = 0.2
    vocab_size: int = text.DEFAULT_VOCAB_SIZE
    compression: str = "none"           # "none" or "gzip"
    seed: int = 0
    overwrite: bool = False
    max_line_bytes: int = sources.DEFAULT_MAX_LINE_BYTES
    parallelism: int | None = None      # bzip2 decoder threads; None: all cores
    runner: str = "local"               # "local" (this process) or "beam" (an Apache Beam pipeline)
    beam_options: tuple[str, ...] = ()  # Beam pipeline options, e.g. ("--runner=DataflowRunner",)

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ReviewflowError(f"--val-fraction must be in [0, 1), got {self.val_fraction}.")
        if self.vocab_size <= text.NUM_SPECIAL_TOKENS:
            raise ReviewflowError(f"--vocab-size must be above {text.NUM_SPECIAL_TOKENS}.")
        if self.compression not in shards.COMPRESSIONS:
            raise ReviewflowError(f"--compression must be one of {shards.COMPRESSIONS}.")
        if self.runner not in RUNNERS:
            raise ReviewflowError(f"--runner must be one of {RUNNERS}.")
        if self.beam_options and self.runner != "beam":
            raise ReviewflowError("--beam-option is for --runner beam.")

    def sources(self) -> dict[str, Path]:
        """Source name -> path, in the order they are read."""
        return {"train": Path(self.train), "test": Path(self.test)}

    def to_json(self) -> dict:
        """The settings that shaped the output (paths as given)."""
        return {field.name: (str(value) if isinstance(value, Path) else value)
                for field in dataclasses.fields(self)
                for value in [getattr(self, field.name)]
                if field.name not in ("overwrite", "parallelism", "beam_options")}


def plan_split_shards(settings: ShardSettings) -> dict[str, int]:
    """Number of shards per split: `num_shards` for each if given, else by estimated size."""
    if settings.num_shards:
        return {split: settings.num_shards for split in shards.SPLITS}
    train_bytes = shards.estimate_text_bytes(settings.train.stat().st_size, sources.compression_of(settings.train))
    test_bytes = shards.estimate_text_bytes(settings.test.stat().st_size, sources.compression_of(settings.test))
    return {
        "train": shards.plan_num_shards(train_bytes * (1 - settings.val_fraction)),
        "validation": shards.plan_num_shards(train_bytes * settings.val_fraction),
        "test": shards.plan_num_shards(test_bytes),
    }


def split_of(source_name: str, label: int, text_bytes: bytes, settings: ShardSettings) -> str:
    """The split a valid line of a source goes to."""
    if source_name == "test":
        return "test"
    return "validation" if shards.is_validation(label, text_bytes, settings.val_fraction, settings.seed) else "train"


def check_sources(settings: ShardSettings) -> None:
    """Refuse missing sources, and the same file given as --train and --test (its reviews would leak)."""
    for path in settings.sources().values():
        if not path.is_file():
            raise SourceError(f"{path}: no such file. Check the path.")
    train, test = settings.train, settings.test
    same = os.path.samefile(train, test) or (
        train.stat().st_size == test.stat().st_size and shards.file_sha256(train) == shards.file_sha256(test))
    if same:
        raise SourceError(f"{train} and {test} are the same file (same path or same sha256): test reviews would "
                          "also be trained on, and every test score would be inflated. Give --test a held-out "
                          "file (for Amazon polarity: test.ft.txt.bz2).")


def check_source_has_examples(source: manifest_lib.SourceInfo, first_reject: str | None) -> None:
    """A source of which no line is a valid review is the wrong file or the wrong format: stop."""
    if source.written:
        return
    if source.lines_read == 0:
        raise SourceError(f"{source.path}: the file holds no lines. {FORMAT_HELP}")
    shown = json.loads(first_reject) if first_reject else {}
    raise SourceError(
        f"{source.path}: none of its {source.lines_read:,} lines is a valid review; the first, line "
        f"{shown.get('line', '?')}, was rejected as {shown.get('reason', '?')}: {shown.get('raw', '')[:120]!r}. "
        f"{FORMAT_HELP} Nothing was written.")


def check_train_split(num_train_examples: int, settings: ShardSettings) -> None:
    if num_train_examples == 0:
        raise ReviewflowError(f"{settings.train}: no example went to the train split (--val-fraction "
                              f"{settings.val_fraction} held out all of them). Lower --val-fraction or give "
                              "more reviews. Nothing was written.")


def assemble_manifest(settings: ShardSettings, splits: dict[str, manifest_lib.SplitInfo],
                      source_infos: list[manifest_lib.SourceInfo], vocabulary: manifest_lib.VocabularyInfo,
                      num_rejected: int, started: float) -> manifest_lib.Manifest:
    """The manifest of a finished run, after the checks every run must pass."""
    for source in source_infos:
        if source.lines_read != source.written + sum(source.rejected.values()):
            raise ReviewflowError(f"{source.path}: read {source.lines_read:,} lines but accounted for "
                                  f"{source.written + sum(source.rejected.values()):,}; nothing was marked "
                                  "complete. Run again.")
    return manifest_lib.Manifest(
        format_version=manifest_lib.FORMAT_VERSION,
        settings=settings.to_json(),
        splits=splits,
        sources=source_infos,
        vocabulary=vocabulary,
        rejects_path=REJECTS_FILE,
        num_rejected=num_rejected,
        seconds=round(time.perf_counter() - started, 3),
    )
