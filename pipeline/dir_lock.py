"""One writer per output directory: `shard`'s data directory, `fit`'s and `tune`'s run directory.

An exclusive `flock` on DIR/.lock, held while the command writes there. A second process is refused at once
(rather than both writing the same files: two fits into one run had one die on HDF5's own lock and the other
keep a history with both processes' rows). The kernel releases the lock when the process dies, so a killed
run never leaves a stale one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from pipeline.errors import ReviewflowError

LOCK_FILE = ".lock"

# Directories this process holds, and how many blocks hold each: `tune` holds its run directory through the
# search, then fits the best configuration into it (a second flock of the same file in one process would
# refuse the process itself).
_held: dict[Path, int] = {}


@contextlib.contextmanager
def locked(directory: Path, error: type[ReviewflowError] = ReviewflowError) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (made if missing) for the block; `error` if another process
    holds it. Callers check that the directory is theirs first: the lock file is the first thing written."""
    key = Path(directory).resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    with open(Path(directory) / LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(f"{directory}: another reviewflow process is writing here (it holds {LOCK_FILE}). Wait "
                        "for it, or choose another --out.") from None
        _held[key] = 1
        try:
            yield  # the lock is released when the file closes, also if the process dies
        finally:
            del _held[key]
