"""`verify`: a data directory checked against its manifest, shard by shard, record by record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tensorflow as tf

from pipeline import manifest as manifest_lib
from pipeline.data_dir import DataDir

READ_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class FileCheck:
    path: str
    problem: str | None      # None: the file is exactly as the manifest says
    num_examples: int | None = None


def count_records(path: Path, compression: str) -> int:
    """Records in a TFRecord file, every one read and its CRCs checked (raises DataLossError if corrupt)."""
    dataset = tf.data.TFRecordDataset(str(path), compression).batch(READ_BATCH)
    return sum(int(tf.size(batch)) for batch in dataset)


def check_shard(data_dir: Path, shard, compression: str) -> FileCheck:
    problem = manifest_lib.file_problem(data_dir, shard.path, shard.bytes, shard.sha256)
    if problem == "missing":
        return FileCheck(shard.path, problem)
    try:
        count = count_records(Path(data_dir) / shard.path, compression)
    except tf.errors.OpError as exc:  # DataLossError: a CRC or length that does not match
        return FileCheck(shard.path, problem or f"unreadable record: {exc.message.splitlines()[0]}")
    if problem is None and count != shard.num_examples:
        problem = f"{count:,} records, the manifest says {shard.num_examples:,}"
    return FileCheck(shard.path, problem, count)


def verify_data_dir(data: DataDir) -> list[FileCheck]:
    """One check per shard and for the vocabulary and its counts; a problem names what is wrong."""
    checks = [check_shard(data.path, shard, data.compression)
              for split in data.manifest.splits.values() for shard in split.shards]
    vocabulary = data.manifest.vocabulary  # the manifest records its hash, not its size
    checks.append(FileCheck(vocabulary.path,
                            manifest_lib.file_problem(data.path, vocabulary.path, sha256=vocabulary.sha256),
                            vocabulary.num_tokens_in_file))
    if vocabulary.counts_path and vocabulary.counts_sha256:
        checks.append(FileCheck(vocabulary.counts_path, manifest_lib.file_problem(
            data.path, vocabulary.counts_path, sha256=vocabulary.counts_sha256), vocabulary.num_tokens_in_file))
    return checks


def summary_lines(checks: list[FileCheck]) -> list[str]:
    """One line per file: ok or BAD, its records and what is wrong."""
    return [f"{'ok ' if check.problem is None else 'BAD'} "
            f"{f'{check.num_examples:>10,}' if check.num_examples is not None else ' ' * 10}  {check.path}"
            + (f": {check.problem}" if check.problem else "") for check in checks]
