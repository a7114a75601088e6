"""The manifest: what a data directory holds, written last, as flat dataclasses.

A data directory is complete if and only if `manifest.json` exists.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipeline import atomic
from pipeline.errors import DatasetError
from pipeline.shards import ShardInfo

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    num_examples: int
    label_counts: dict[str, int]  # "0" (negative) and "1" (positive)
    shards: list[ShardInfo]


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    path: str
    splits: list[str]           # the splits its lines went to
    bytes: int
    sha256: str
    lines_read: int
    written: int
    rejected: dict[str, int]    # reason -> count; lines_read == written + sum(rejected)


@dataclasses.dataclass(frozen=True)
class VocabularyInfo:
    path: str
    size: int                   # TextVectorization max_tokens: tokens in the file + padding + [UNK]
    num_tokens_in_file: int
    sha256: str
    distinct_tokens_seen: int   # in the training split
    tokens_seen: int
    coverage: float             # share of training tokens that the vocabulary covers


@dataclasses.dataclass(frozen=True)
class Manifest:
    format_version: int
    settings: dict
    splits: dict[str, SplitInfo]
    sources: list[SourceInfo]
    vocabulary: VocabularyInfo
    rejects_path: str
    num_rejected: int
    seconds: float

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "Manifest":
        splits = {name: SplitInfo(split["num_examples"], split["label_counts"],
                                  [ShardInfo(**shard) for shard in split["shards"]])
                  for name, split in obj["splits"].items()}
        return cls(
            format_version=obj["format_version"],
            settings=obj["settings"],
            splits=splits,
            sources=[SourceInfo(**source) for source in obj["sources"]],
            vocabulary=VocabularyInfo(**obj["vocabulary"]),
            rejects_path=obj["rejects_path"],
            num_rejected=obj["num_rejected"],
            seconds=obj["seconds"],
        )


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    """Write `manifest.json` atomically: the last step of a successful shard."""
    atomic.write_json(Path(data_dir) / MANIFEST_FILE, manifest.to_json())


def read_manifest(data_dir: Path) -> Manifest:
    """The manifest of a complete data directory; refuses one without it."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        raise DatasetError(
            f"{data_dir}: no {MANIFEST_FILE}, so this is not a complete data directory "
            "(a shard run may have been interrupted). Run `reviewflow shard` to create it.")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        if obj.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{path}: format_version {obj.get('format_version')!r} is not "
                               f"{FORMAT_VERSION}; re-shard with this version of reviewflow.")
        return Manifest.from_json(obj)
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc}); re-shard the corpus.") from exc


def check_files_present(data_dir: Path, manifest: Manifest) -> None:
    """Refuse a directory whose shards are missing or have the wrong size (cheap: no hashing)."""
    problems = []
    for split in manifest.splits.values():
        for shard in split.shards:
            path = Path(data_dir) / shard.path
            if not path.is_file():
                problems.append(f"{shard.path}: missing")
            elif path.stat().st_size != shard.bytes:
                problems.append(f"{shard.path}: {path.stat().st_size} bytes, manifest says {shard.bytes}")
    if problems:
        raise DatasetError(f"{data_dir} is damaged: " + "; ".join(problems[:5]) +
                           ". Run `reviewflow verify` for details, or re-shard.")
