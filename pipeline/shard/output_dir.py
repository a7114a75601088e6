"""The output directory of `shard`: one writer at a time, never mixed with an old dataset or a user's files."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import dir_lock, ownership
from pipeline.dir_lock import LOCK_FILE
from pipeline.errors import DatasetError
from pipeline.manifest import MANIFEST_FILE

# Everything a shard run writes (temporary `.incomplete` names are added by the layout); an interrupted
# run leaves only these, without a manifest. The last two: what `--runner beam` stages and reports.
DATA_LAYOUT = ownership.Layout(
    kind="data directory",
    names=(r"(?:train|validation|test)-\d{5}-of-\d{5}\.tfrecord(?:\.gz)?", r"vocab\.txt", r"vocab_counts\.txt",
           r"rejects\.jsonl", re.escape(MANIFEST_FILE), re.escape(LOCK_FILE), r"beam-temp-.+-[0-9a-f]{32}",
           r"beam-report\.jsonl"),
    legacy_file=LOCK_FILE)


def locked(data_dir: Path):
    """Hold `data_dir`'s lock for the block (`dir_lock`): one shard run writes it at a time."""
    return dir_lock.locked(data_dir, DatasetError)


def check_output_dir(data_dir: Path, overwrite: bool) -> None:
    """Refuse `data_dir` if it holds a user's files, or a complete dataset without `overwrite`; changes nothing."""
    ownership.check_ours(data_dir, DATA_LAYOUT)
    if (data_dir / MANIFEST_FILE).exists() and not overwrite:
        raise DatasetError(f"{data_dir} already holds a complete dataset. Pass --overwrite to replace it, or "
                           "choose an empty --out directory.")


def prepare_output_dir(data_dir: Path, overwrite: bool) -> None:
    """Empty `data_dir` (locked) of dataset files, refusing as `check_output_dir` does; then mark it ours.

    A directory without a manifest holds at most an interrupted run: its files are removed without asking.
    """
    check_output_dir(data_dir, overwrite)
    remove_dataset_files(data_dir)
    ownership.claim(data_dir, DATA_LAYOUT)


def remove_dataset_files(data_dir: Path) -> None:
    """Delete everything a shard run writes (after a failure, or before a new run); the lock stays."""
    # The manifest goes first: from then on the directory is marked incomplete.
    (data_dir / MANIFEST_FILE).unlink(missing_ok=True)
    ownership.remove_ours(data_dir, DATA_LAYOUT, keep=(LOCK_FILE,))


def directories_to_make(data_dir: Path) -> list[Path]:
    """`data_dir` and those of its parents that do not exist yet, deepest first: what a run would create."""
    return [path for path in (data_dir, *data_dir.parents) if not path.exists()]


def is_empty_directory(path: Path) -> bool:
    """Whether `path` is a directory with nothing in it (a user's new `--out`, before the run marks it)."""
    return path.is_dir() and next(path.iterdir(), None) is None


def remove_if_bare(made: list[Path], emptied: Path | None = None) -> None:
    """After a failed run: remove the directories it made (`directories_to_make`), deepest first, and empty
    `emptied` (a directory that was empty before it), where they hold nothing but reviewflow's marker and lock;
    any other entry (another run's, a user's) keeps them as they are."""
    for path in made:
        if not _unmark_if_bare(path):
            return
        path.rmdir()
    if emptied is not None:
        _unmark_if_bare(emptied)


def remove_empty(made: list[Path]) -> None:
    """Remove those of the directories a run would have made (`directories_to_make`) that exist and are empty,
    deepest first, up to the first that holds anything (another run's lock, a user's file)."""
    for path in made:
        try:
            path.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            return


def _unmark_if_bare(path: Path) -> bool:
    """Delete the marker and lock of a directory that holds nothing else; whether it did."""
    bare = {ownership.MARKER_FILE, LOCK_FILE}
    if not path.is_dir() or not {entry.name for entry in path.iterdir()} <= bare:
        return False
    for name in bare:
        (path / name).unlink(missing_ok=True)
    return True
