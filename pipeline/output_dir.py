"""The output directory of `shard`: one writer at a time, never mixed with an old dataset."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
from pathlib import Path
from typing import Iterator

from pipeline.errors import DatasetError
from pipeline.manifest import MANIFEST_FILE

LOCK_FILE = ".lock"
# Everything a shard run writes; an interrupted run leaves only these (no manifest).
DATASET_PATTERNS = ("*-of-*.tfrecord*", "vocab.txt*", "vocab_counts.txt*", "rejects.jsonl*", "*.incomplete",
                    MANIFEST_FILE, "beam-temp-*", "beam-report.jsonl*")  # the last two: what `--runner beam` stages


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on `data_dir` for the block; refuse if another run holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatasetError(f"{data_dir}: another reviewflow run is writing here (it holds "
                               f"{LOCK_FILE}). Wait for it, or choose another --out.") from None
        yield  # the lock is released when the file closes, also if the process dies


def dataset_files(data_dir: Path) -> list[Path]:
    return sorted({p for pattern in DATASET_PATTERNS for p in data_dir.glob(pattern)})


def prepare_output_dir(data_dir: Path, overwrite: bool) -> None:
    """Empty `data_dir` of dataset files, refusing to replace a complete dataset unless `overwrite`.

    A directory without a manifest holds at most an interrupted run: its files
    are removed without asking. Files that a shard run does not write are never
    touched, and their presence makes us refuse unless `overwrite`.
    """
    ours = set(dataset_files(data_dir))
    foreign = [p for p in data_dir.iterdir() if p not in ours and p.name != LOCK_FILE]
    complete = (data_dir / MANIFEST_FILE).exists()
    if (complete or foreign) and not overwrite:
        what = "a complete dataset" if complete else f"other files ({foreign[0].name}, ...)"
        raise DatasetError(f"{data_dir} already holds {what}. Pass --overwrite to replace "
                           "the dataset, or choose an empty --out directory.")
    remove_dataset_files(data_dir)


def remove_dataset_files(data_dir: Path) -> None:
    """Delete everything a shard run writes (after a failure, or before a new run)."""
    # The manifest goes first: from then on the directory is marked incomplete.
    (data_dir / MANIFEST_FILE).unlink(missing_ok=True)
    for path in dataset_files(data_dir):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
