"""Open `.bz2`, `.gz` or plain files lazily and iterate their lines in flat memory; size, hash and list a source
(a file, or a directory of class folders)."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from pipeline.errors import SourceError

BZIP2_MAGIC = b"BZh"
GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
READ_CHUNK_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB; real reviews are a few KiB at most.

try:  # Parallel bzip2 decoding; the standard library is the fallback.
    import indexed_bzip2
except ImportError:  # pragma: no cover - exercised only where the wheel is missing
    indexed_bzip2 = None


@dataclasses.dataclass(frozen=True)
class TooLongLine:
    """A line over the byte limit: only its start is kept, so memory stays bounded."""

    prefix: bytes
    num_bytes: int


# What a decompressor or reader raises on a truncated or corrupt file: bz2's EOFError, gzip's OSError,
# indexed_bzip2's RuntimeError, zlib's and pyarrow's ValueError subclasses.
READ_ERRORS = (EOFError, OSError, RuntimeError, ValueError)


def damaged_source(path: Path, where: str, exc: BaseException) -> SourceError:
    """The error for a source that stops reading part-way: which file, how far it got, and the fix."""
    return SourceError(f"{path}: compressed data is truncated or corrupt after {where}: {exc}. Nothing was "
                       "marked complete; re-download the file (check it with `bzip2 -t` or `gzip -t`) and "
                       "run again.")


def compression_of(path: Path) -> str:
    """'bz2', 'gzip' or 'none', from the file's magic bytes rather than its name."""
    with open(path, "rb") as f:
        head = f.read(3)
    if head.startswith(BZIP2_MAGIC):
        return "bz2"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if path.suffix in (".bz2", ".gz"):
        raise SourceError(
            f"{path}: the name says {path.suffix} but the file does not start with that "
            "format's magic bytes; it is damaged or misnamed. Re-download it or rename it."
        )
    return "none"


def default_parallelism() -> int:
    """Decoder threads for bzip2: all cores; the other work overlaps with it."""
    return max(1, os.cpu_count() or 1)


def folder_files(root: Path) -> Iterator[Path]:
    """Every entry of a corpus of class folders but its folders, in one order on every run: each class folder's
    files (its subfolders' too), and whatever lies beside the class folders. A link to a folder is an entry, not
    followed (a loop would never end); a folder that cannot be listed stops the run, never skipped unseen."""
    def unlisted(error: OSError):
        raise SourceError(f"{error.filename}: cannot be listed ({error.strerror}). Make it readable, or move it "
                          f"out of {root}, and run again.") from error

    for entry in sorted(os.scandir(root), key=lambda entry: entry.name):
        if not entry.is_dir(follow_symlinks=False):
            yield Path(entry.path)
            continue
        for directory, folders, files in os.walk(entry.path, onerror=unlisted):
            linked = {name for name in folders if os.path.islink(os.path.join(directory, name))}
            folders[:] = sorted(set(folders) - linked)
            yield from (Path(directory, name) for name in sorted([*files, *linked]))


def source_bytes(path: Path) -> int:
    """A source's size on disk: a file's, or a folder corpus's files' together."""
    path = Path(path)
    if path.is_dir():
        return sum(file.stat().st_size for file in folder_files(path) if file.is_file())
    return path.stat().st_size


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def source_sha256(path: Path) -> str:
    """A source's SHA-256: a file's, or a folder corpus's over each file's path and hash, in `folder_files` order."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in folder_files(path):
        digest.update(str(file.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
        if file.is_file():
            digest.update(bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()


def source_compression(path: Path) -> str:
    """A source's compression: a file's (`compression_of`); a folder corpus's files are read as they are."""
    return "none" if Path(path).is_dir() else compression_of(path)


def refuse_not_a_source(path: Path) -> None:
    """A source is a regular file, or a directory of class folders (`--format folders`)."""
    if not Path(path).is_dir():
        refuse_not_a_file(path)


def refuse_not_a_file(path: Path) -> None:
    """A source must be a regular file: read twice (its records, its sha256) and sized for progress."""
    if not path.exists():
        raise SourceError(f"{path}: no such file. Check the path.")
    if path.is_dir():
        raise SourceError(f"{path}: a directory, which only --format folders reads (a folder per class, a review "
                          "per file). Leave --format out for that, or give a file.")
    if not path.is_file():  # /dev/stdin, a pipe such as bash's <(zcat ...)
        raise SourceError(f"{path}: not a regular file (a pipe or a device). Write it to a file "
                          "first; `predict` also reads reviews piped into its standard input.")


def open_source(path: Path, parallelism: int | None = None) -> BinaryIO:
    """A binary stream of the decompressed contents of `path`."""
    path = Path(path)
    refuse_not_a_file(path)
    compression = compression_of(path)
    parallelism = default_parallelism() if parallelism is None else parallelism
    if compression == "bz2":
        if indexed_bzip2 is not None and parallelism > 1:
            return indexed_bzip2.open(str(path), parallelization=parallelism)
        return bz2.open(path, "rb")
    if compression == "gzip":
        return gzip.open(path, "rb")
    return open(path, "rb")


class LineReader:
    """Iterates a source's lines (without line endings) with bounded memory.

    Reads fixed-size chunks and splits them in C, which is much faster than a
    Python-level readline per line; a line longer than `max_line_bytes` is
    yielded as a `TooLongLine` and its bytes past the limit are never held.
    """

    def __init__(self, path: Path, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 parallelism: int | None = None, chunk_bytes: int = READ_CHUNK_BYTES):
        self.path = Path(path)
        self.max_line_bytes = max_line_bytes
        self.parallelism = parallelism
        self.chunk_bytes = chunk_bytes
        self.lines_read = 0
        self.bytes_read = 0  # decompressed bytes consumed so far

    def __iter__(self) -> Iterator[bytes | TooLongLine]:
        with open_source(self.path, self.parallelism) as stream:
            yield from self._lines(stream)

    def _read(self, stream: BinaryIO) -> bytes:
        try:
            chunk = stream.read(self.chunk_bytes)
        except READ_ERRORS as exc:
            raise damaged_source(self.path, f"line {self.lines_read:,} ({self.bytes_read:,} bytes decompressed)",
                                 exc) from exc
        self.bytes_read += len(chunk)
        return chunk

    def _lines(self, stream: BinaryIO) -> Iterator[bytes | TooLongLine]:
        pending = b""  # the unfinished last line of the previous chunk
        too_long: TooLongLine | None = None  # set while skipping an over-long line
        first = True
        while chunk := self._read(stream):
            if first and chunk.startswith(UTF8_BOM):
                chunk = chunk[len(UTF8_BOM):]
            first = False
            lines = chunk.split(b"\n")
            lines[0] = pending + lines[0] if too_long is None else lines[0]
            pending = lines.pop()
            for index, line in enumerate(lines):
                self.lines_read += 1
                if index == 0 and too_long is not None:
                    yield TooLongLine(too_long.prefix, too_long.num_bytes + len(line))
                    too_long = None
                elif len(line) > self.max_line_bytes:
                    yield TooLongLine(line[:self.max_line_bytes], len(line))
                else:
                    yield line
            if too_long is not None:
                too_long = TooLongLine(too_long.prefix, too_long.num_bytes + len(pending))
                pending = b""
            elif len(pending) > self.max_line_bytes:
                too_long = TooLongLine(pending[:self.max_line_bytes], len(pending))
                pending = b""
        if too_long is not None:
            self.lines_read += 1
            yield too_long
        elif pending:
            self.lines_read += 1
            yield pending if len(pending) <= self.max_line_bytes else TooLongLine(
                pending[:self.max_line_bytes], len(pending))


def stream_lines(stream: BinaryIO, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[bytes]:
    """A stream's lines (without line endings) as each one comes, each cut at `max_line_bytes`: the rest of a
    longer line is read and dropped, never held.

    For a pipe someone is still writing (standard input), where `LineReader`'s fixed-size reads would wait for
    a whole chunk before a line was seen; `readline` returns at each line's end. A UTF-8 byte order mark that
    starts the stream is left out, as `LineReader` leaves it out.
    """
    first = True
    while line := stream.readline(max_line_bytes + 1):
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            line = line[:max_line_bytes]
            while (rest := stream.readline(max_line_bytes)) and not rest.endswith(b"\n"):
                pass  # the middle of an over-long line: one piece at a time, each dropped
        if first:
            line, first = line.removeprefix(UTF8_BOM), False
        yield line.rstrip(b"\r\n")
