"""Atomic writes: a temporary name in the same directory, then a rename."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Iterator

INCOMPLETE_SUFFIX = ".incomplete"


def incomplete_path(path: Path) -> Path:
    """Where `path` is written before it is complete."""
    path = Path(path)
    return path.with_name(path.name + INCOMPLETE_SUFFIX)


def incomplete_keeping_suffix(path: Path) -> Path:
    """Where `path` is written before it is complete, for writers that require its suffix (Keras: `.keras`)."""
    path = Path(path)
    return path.with_name(path.stem + INCOMPLETE_SUFFIX + path.suffix)


def commit(temporary: Path, final: Path) -> None:
    """Flush `temporary` to disk and rename it to `final` in one step."""
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, final)


@contextlib.contextmanager
def open_for_write(path: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open `path.incomplete` for writing; rename it to `path` only if the block succeeds."""
    path = Path(path)
    temporary = incomplete_path(path)
    try:
        with open(temporary, mode, **kwargs) as f:
            yield f
        commit(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: Path, content: str) -> None:
    """Write UTF-8 text atomically."""
    with open_for_write(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(content)


def write_json(path: Path, obj) -> None:
    """Write JSON (indented, keys in insertion order) atomically."""
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
