"""`rejects.jsonl`: every line that was not written, with its source, line number and reason."""

from __future__ import annotations

import collections
import enum
import json
from pathlib import Path
from typing import Mapping

from pipeline import atomic
from pipeline.sources import TooLongLine

REJECTS_FILE = "rejects.jsonl"
RAW_BYTES_KEPT = 16 << 10    # of a rejected record, rejects.jsonl keeps at most this many bytes (and its length)
MAX_REJECTS_KEPT = 10_000    # rejects.jsonl keeps the first this many rejects whole; later ones are only counted


class Reject(str, enum.Enum):
    """Why a record was not written; the value is what the manifest and rejects.jsonl say."""

    NO_LABEL = "no_label"          # fastText: does not start with __label__
    TOO_DEEP = "too_deep"          # JSON lines: nested deeper than the parser can follow
    BAD_LABEL = "bad_label"        # an empty or over-long label, or one under --min-class-examples in training
    UNKNOWN_LABEL = "unknown_label"  # a test record whose label is none of the training file's classes
    EMPTY_TEXT = "empty_text"      # a label and nothing else
    INVALID_UTF8 = "invalid_utf8"  # bytes that do not decode as UTF-8
    NUL_BYTE = "nul_byte"          # a NUL byte: binary data, not a review
    LINE_TOO_LONG = "line_too_long"  # fastText: over --max-line-bytes
    RECORD_TOO_LONG = "record_too_long"  # CSV/TSV/JSONL/Parquet: a record, row or field over --max-line-bytes
    TOO_COMPRESSED = "too_compressed"  # Parquet: a row of a row group whose text decompresses over 1000x
    MISSING_FIELD = "missing_field"  # no text or label field (or null), or an empty row
    BAD_ROW = "bad_row"            # unparseable: not JSON, not an object, a field count unlike the header's
    BAD_QUOTE = "bad_quote"        # CSV/TSV: a quote where none may be, or one never closed


def reasons_text(counts: Mapping[str, int]) -> str:
    """`bad_row 1, too_deep 2`: each reason and its count, in `counts`' own order (callers choose it)."""
    return ", ".join(f"{reason} {count:,}" for reason, count in counts.items())


def text_problem(text: bytes) -> Reject | None:
    """Why a (stripped) review text cannot be written, or None: empty, a NUL byte, or not UTF-8."""
    if not text:
        return Reject.EMPTY_TEXT
    if b"\x00" in text:
        return Reject.NUL_BYTE
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return Reject.INVALID_UTF8
    return None


def reject_line(source: str, line_number: int, reason: Reject, line: bytes | TooLongLine) -> str:
    """One line of rejects.jsonl (with its newline): where the line was, why, and its bytes."""
    record = {"source": source, "line": line_number, "reason": reason.value}
    num_bytes = line.num_bytes if isinstance(line, TooLongLine) else len(line)
    raw = line.prefix if isinstance(line, TooLongLine) else line
    if num_bytes > RAW_BYTES_KEPT or len(raw) < num_bytes:  # only the start is kept, marked as cut
        raw = raw[:RAW_BYTES_KEPT]
        record.update(truncated=True, num_bytes=num_bytes)
    # backslashreplace keeps undecodable bytes visible and recoverable (a character cut in two shows so too).
    record["raw"] = raw.decode("utf-8", errors="backslashreplace")
    return json.dumps(record, ensure_ascii=False) + "\n"


class RejectLog:
    """Appends rejected lines to `rejects.jsonl.incomplete`; the total and each reason counted per source.

    A source is counted under the name it was given (`add`'s `source_name`),
    not its path, so two sources never share counts. The first `max_kept`
    rejects are kept in the file (each cut to RAW_BYTES_KEPT); every one is counted.
    """

    def __init__(self, data_dir: Path, max_kept: int = MAX_REJECTS_KEPT):
        self.path = Path(data_dir) / REJECTS_FILE
        self.max_kept = max_kept
        self._file = open(atomic.incomplete_path(self.path), "w", encoding="utf-8")
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.first: dict[str, str] = {}  # source name -> its first rejects.jsonl line
        self.total = 0
        self.kept = 0

    def add(self, source_name: str, path: str, line_number: int, reason: Reject, line: bytes | TooLongLine) -> None:
        if self.kept < self.max_kept or source_name not in self.first:
            record = reject_line(path, line_number, reason, line)
            self.first.setdefault(source_name, record)
            if self.kept < self.max_kept:
                self._file.write(record)
                self.kept += 1
        self.counts[source_name][reason.value] += 1
        self.total += 1

    def finish(self) -> None:
        self._file.close()
        atomic.commit(atomic.incomplete_path(self.path), self.path)

    def discard(self) -> None:
        self._file.close()
        atomic.incomplete_path(self.path).unlink(missing_ok=True)
