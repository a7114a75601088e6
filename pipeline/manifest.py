"""The manifest: what a data directory holds, written last, as flat dataclasses.

A data directory is complete if and only if `manifest.json` exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from pipeline import atomic, ownership
from pipeline.errors import DatasetError
from pipeline.labels import LEGACY_CLASSES, ClassesInfo
from pipeline.rejects import reasons_text
from pipeline.shard.writer import ShardInfo, file_sha256

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SplitInfo:
    num_examples: int
    label_counts: dict[str, int]  # by class id ("0", "1", ...: the manifest's `classes` order)
    shards: list[ShardInfo]
    # Reviews per length in tokens ("12": 345), as `text.token_lengths` counts them; None in older directories.
    length_counts: dict[str, int] | None = None

    def lengths(self) -> dict[int, int] | None:
        """The length histogram with int keys, or None if this directory was sharded before it was kept."""
        return None if self.length_counts is None else {int(k): v for k, v in self.length_counts.items()}


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    path: str
    splits: list[str]           # the splits its lines went to
    bytes: int
    sha256: str
    lines_read: int
    written: int
    rejected: dict[str, int]    # reason -> count; lines_read == written + sum(rejected)
    format: str = "fasttext"    # fasttext, csv, tsv, jsonl or parquet; lines_read counts its records
    fields: list[str] | None = None  # the text and label fields read (csv, tsv, jsonl, parquet)


@dataclasses.dataclass(frozen=True)
class VocabularyInfo:
    path: str
    size: int                   # TextVectorization max_tokens: tokens in the file + padding + [UNK]
    num_tokens_in_file: int
    sha256: str
    distinct_tokens_seen: int   # in the training split
    tokens_seen: int
    coverage: float             # share of training tokens that the vocabulary covers
    counts_path: str | None = None  # each token's count in the training split, one per line (newer runs)
    counts_sha256: str | None = None  # of counts_path (None: sharded before it was kept)
    count_error: int = 0        # 0: exact counts; else the most a count may be low by (pipeline/vocab.py pruned it)


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
    classes: ClassesInfo | None = None  # None: sharded before classes were kept (Amazon polarity's 1 and 2)
    rejects_kept: int | None = None     # rejects in rejects.jsonl (the first ones); None: all (older directories)

    def class_info(self) -> ClassesInfo:
        """The classes, their order and the record-id map (the two of Amazon polarity for older directories)."""
        return self.classes if self.classes is not None else LEGACY_CLASSES

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict) -> "Manifest":
        splits = {name: SplitInfo(split["num_examples"], split["label_counts"],
                                  [ShardInfo(**shard) for shard in split["shards"]], split.get("length_counts"))
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
            classes=ClassesInfo(**obj["classes"]) if obj.get("classes") else None,
            rejects_kept=obj.get("rejects_kept"),
        )


def length_counts(histogram: dict[int, int]) -> dict[str, int]:
    """A length histogram as the manifest holds it: JSON keys, shortest first."""
    return {str(length): count for length, count in sorted(histogram.items())}


def class_counts_text(classes: ClassesInfo, label_counts: dict[str, int]) -> str:
    """`negative 12, positive 30` for polarity's two classes, else `1 5, 2 7, ...` by class name."""
    return ", ".join(f"{name} {label_counts.get(str(index), 0):,}"
                     for index, name in enumerate(classes.display_names()))


def write_manifest(data_dir: Path, manifest: Manifest) -> None:
    """Write `manifest.json` atomically: the last step of a successful shard."""
    atomic.write_json(Path(data_dir) / MANIFEST_FILE, manifest.to_json())


def read_manifest(data_dir: Path) -> Manifest:
    """The manifest of a complete data directory; refuses one without it."""
    return parse_manifest(data_dir, read_manifest_bytes(data_dir))


def read_manifest_bytes(data_dir: Path) -> bytes:
    """`manifest.json` as written; refuses a directory without it."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        if ownership.marked_kind(data_dir) == "run directory":  # RUN given as --data (the two get mixed up)
            raise DatasetError(f"{data_dir} is a run directory (`fit` wrote it), not a data directory: give the "
                               "directory `shard --out` wrote (the run's config.json names it under settings.data).")
        raise DatasetError(
            f"{data_dir}: no {MANIFEST_FILE}, so this is not a complete data directory "
            "(a shard run may have been interrupted). Run `reviewflow shard` to create it.")
    return path.read_bytes()


def parse_manifest(data_dir: Path, raw: bytes) -> Manifest:
    path = Path(data_dir) / MANIFEST_FILE
    try:
        obj = json.loads(raw.decode("utf-8"))
        if obj.get("format_version") != FORMAT_VERSION:
            raise DatasetError(f"{path}: format_version {obj.get('format_version')!r} is not "
                               f"{FORMAT_VERSION}; re-shard with this version of reviewflow.")
        manifest = Manifest.from_json(obj)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc}); re-shard the corpus.") from exc
    for listed in listed_files(manifest):
        if not is_plain_name(listed):
            raise DatasetError(f"{path} lists {listed!r}, which is not a plain file name in the data directory "
                               "(an absolute path or one with '/' or '..'): reviewflow reads only its own files "
                               "there. The manifest was changed; re-shard the corpus.")
    return manifest


def listed_files(manifest: Manifest) -> list[str]:
    """Every file the manifest names inside its data directory: shards, vocabulary, counts, rejects."""
    shards = [shard.path for split in manifest.splits.values() for shard in split.shards]
    vocabulary = [manifest.vocabulary.path] + ([manifest.vocabulary.counts_path]
                                               if manifest.vocabulary.counts_path else [])
    return shards + vocabulary + [manifest.rejects_path]


def is_plain_name(name) -> bool:
    """True for `train-00000-of-00001.tfrecord`; False for `/etc/passwd`, `../x`, `a/b`, `..`, `` or a non-string."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\x00" not in name


def manifest_sha256(raw: bytes) -> str:
    """Identifies the exact data directory a run was trained or evaluated on: the manifest's own hash."""
    return hashlib.sha256(raw).hexdigest()


def record_unit(source_format: str) -> str:
    """What a source's records are called: a fastText file's lines, a folder corpus's files, a table's records."""
    return {"fasttext": "lines", "folders": "files"}.get(source_format, f"{source_format} records")


def summary_lines(manifest: Manifest, data_dir: Path) -> list[str]:
    """What `shard` prints: examples per split and label, lines per source, the vocabulary."""
    lines = [f"{name:>10}: {split.num_examples:>10,} examples in {len(split.shards)} shards "
             f"({class_counts_text(manifest.class_info(), split.label_counts)})"
             for name, split in manifest.splits.items()]
    for source in manifest.sources:
        reasons = reasons_text(source.rejected) or "none"
        unit = record_unit(source.format)
        lines.append(f"{Path(source.path).name}: {source.lines_read:,} {unit} read, "
                     f"{source.written:,} written, rejected: {reasons}")
    if manifest.rejects_kept is not None and manifest.rejects_kept < manifest.num_rejected:
        lines.append(f"{manifest.rejects_path} keeps the first {manifest.rejects_kept:,} of "
                     f"{manifest.num_rejected:,} rejects; every one is counted above")
    classes = manifest.class_info()
    if classes.positive is not None:
        lines.append(f"classes: {', '.join(classes.names)} (positive: {classes.positive})")
    else:
        lines.append(f"classes: {classes.num_classes}: {', '.join(classes.names)}")
    lines.append(f"vocabulary: {manifest.vocabulary.size:,} ids "
                 f"(covers {manifest.vocabulary.coverage:.1%} of training tokens)")
    lines.append(f"done in {manifest.seconds:.1f} s -> {data_dir}")
    return lines


SHA256_DIFFERS = "sha256 differs from the manifest (the file was changed or damaged)"


def file_problem(data_dir: Path, relative_path: str, size: int | None = None,
                 sha256: str | None = None) -> str | None:
    """What is wrong with one listed file (missing, other size, other hash), or None; None skips a check."""
    path = Path(data_dir) / relative_path
    if not path.is_file():
        return "missing"
    if size is not None and path.stat().st_size != size:
        return f"{path.stat().st_size:,} bytes, the manifest says {size:,}"
    if sha256 is not None:
        if file_sha256(path) != sha256:
            return SHA256_DIFFERS
    return None


def check_files_present(data_dir: Path, manifest: Manifest, hashes: bool | tuple[str, ...] = False) -> None:
    """Refuse a directory whose files differ from the manifest: every shard's size (and sha256: of every split
    with `hashes=True`, of the named splits with a tuple), and always the vocabulary's and counts' sha256
    (small files, read whole by every command, that no size check would catch a changed token in)."""
    hashed = set(manifest.splits) if hashes is True else set(hashes or ())
    listed = [(shard.path, shard.bytes, shard.sha256 if name in hashed else None)
              for name, split in manifest.splits.items() for shard in split.shards]
    vocabulary = manifest.vocabulary
    listed.append((vocabulary.path, None, vocabulary.sha256))
    if vocabulary.counts_path and vocabulary.counts_sha256:
        listed.append((vocabulary.counts_path, None, vocabulary.counts_sha256))
    problems = [f"{path}: {problem}" for path, size, sha256 in listed
                if (problem := file_problem(data_dir, path, size, sha256))]
    if problems:
        raise DatasetError(f"{data_dir} is damaged: " + "; ".join(problems[:5]) +
                           ". Run `reviewflow verify` for details, or re-shard.")
