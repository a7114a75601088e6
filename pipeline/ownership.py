"""What reviewflow may delete: only the entries it writes, in a directory that it marked as its own.

A directory reviewflow writes (a data directory, a run directory) gets a marker file the first time, and
each kind of directory has a `Layout`: the names reviewflow writes there. `--overwrite` removes those
entries and nothing else, and only when the directory holds nothing but them and is marked (or is an
older reviewflow's, recognized by the file it always wrote: `.lock` of `shard`, `config.json` of `fit`).
Anything else in it, a user's notes or a folder of photos, makes the command refuse and touch nothing.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

from pipeline import atomic
from pipeline.errors import ReviewflowError

MARKER_FILE = ".reviewflow"


@dataclasses.dataclass(frozen=True)
class Layout:
    """One kind of directory reviewflow writes: what it is called, and the names of its entries."""

    kind: str                      # "data directory", "run directory": what the marker and errors say
    names: tuple[str, ...]         # regular expressions, matched against a whole entry name
    # What an older reviewflow (before the marker) always wrote there: a file name, and the keys its JSON
    # object holds (none: any content), so that a user's own `config.json` is not taken for a run's.
    legacy_file: str
    legacy_keys: tuple[str, ...] = ()

    def writes(self, name: str) -> bool:
        """True for an entry name reviewflow writes in this kind of directory (temporary names included)."""
        return any(re.fullmatch(pattern, name) for pattern in self._patterns)

    @property
    def _patterns(self) -> tuple[str, ...]:
        # Every file is written under NAME.incomplete first (pipeline/atomic.py), the marker too (a run killed
        # as it wrote the marker leaves `.reviewflow.incomplete`): those are ours as well.
        return tuple(f"(?:{pattern})(?:{re.escape(atomic.INCOMPLETE_SUFFIX)})?"
                     for pattern in (re.escape(MARKER_FILE), *self.names))


def claim(path: Path, layout: Layout) -> None:
    """Create `path` if needed and mark it as reviewflow's (once); call only after `check_ours`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    marker = path / MARKER_FILE
    if not marker.is_file():
        atomic.write_json(marker, {"kind": layout.kind, "written_by": "reviewflow"})


def marked_kind(path: Path) -> str | None:
    """The kind of directory `path`'s marker names ("data directory", "run directory"); None without one."""
    marker = Path(path) / MARKER_FILE
    if not marker.is_file():
        return None
    try:
        kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def refuse_managed(path: Path, option: str, itself: bool = True) -> None:
    """Refuse to put a command's files (a report, a comparison, projector files, a plot; a run, a data directory,
    a corpus) in or anywhere under a data or run directory: there they would be entries reviewflow does not
    write, which its `--overwrite` would then refuse to touch. `itself=False`: `path` may be such a directory
    (`fit --out`, a run directory), only not inside one."""
    absolute = Path(path).absolute()
    for place in ([absolute] if itself else []) + list(absolute.parents):
        kind = marked_kind(place)
        if kind is not None:
            raise ReviewflowError(f"{place} is a {kind} reviewflow wrote: {option} {path} would put files of "
                                  f"another kind in it (its --overwrite would then refuse to touch it). Choose "
                                  f"another {option}, outside it.")


def is_marked(path: Path, layout: Layout) -> bool:
    """True when `path` carries reviewflow's marker for this kind, or an older reviewflow's tell-tale file."""
    if (Path(path) / MARKER_FILE).is_file():
        return marked_kind(path) == layout.kind
    return _is_legacy(Path(path) / layout.legacy_file, layout.legacy_keys)


def _is_legacy(path: Path, keys: tuple[str, ...]) -> bool:
    if not path.is_file():
        return False
    if not keys:
        return True
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(obj, dict) and all(key in obj for key in keys)


def foreign_entries(path: Path, layout: Layout) -> list[Path]:
    """The entries of `path` that reviewflow does not write there."""
    return sorted(entry for entry in Path(path).iterdir() if not layout.writes(entry.name))


def check_ours(path: Path, layout: Layout, option: str = "--out") -> list[Path]:
    """The entries of `path` (all reviewflow's); refuses a file, a foreign entry, or an unmarked directory.

    A missing or empty directory is fine: reviewflow creates it or fills it.
    """
    path = Path(path)
    if not path.exists():
        return []
    if not path.is_dir():
        raise ReviewflowError(f"{path} is a file, not a {layout.kind}. Choose another {option}.")
    entries = sorted(path.iterdir())
    if not entries:
        return []
    kind = marked_kind(path)
    if kind is not None and kind != layout.kind:  # e.g. `fit --out` naming the data directory it reads
        raise ReviewflowError(f"{path} is a {kind} reviewflow wrote, not a {layout.kind}; it deletes and mixes "
                              f"nothing there. Choose an empty or new {option}.")
    foreign = foreign_entries(path, layout)
    if foreign:
        shown = ", ".join(entry.name for entry in foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise ReviewflowError(f"{path} holds {len(foreign)} file(s) reviewflow did not write ({shown}); it "
                              f"deletes and mixes nothing there. Choose an empty or new {option}, or move "
                              "those files out.")
    if not is_marked(path, layout):
        raise ReviewflowError(f"{path} is not a {layout.kind} reviewflow wrote (no {MARKER_FILE} marker); it "
                              f"deletes nothing there. Choose an empty or new {option}.")
    return entries


def remove_ours(path: Path, layout: Layout, keep: tuple[str, ...] = ()) -> None:
    """Delete the entries reviewflow writes in `path` (marked as its own), the marker and `keep` excepted.

    Callers check the directory with `check_ours` first; entries of other names are never touched here.
    """
    path = Path(path)
    if not path.is_dir() or not is_marked(path, layout):
        return
    for entry in sorted(path.iterdir()):
        if entry.name == MARKER_FILE or entry.name in keep or not layout.writes(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)
