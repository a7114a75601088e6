"""`rejects.jsonl`: every line that was not written, with its source, line number and reason."""

from __future__ import annotations

import collections
import enum
import json
from pathlib import Path

from pipeline import atomic
from pipeline.sources import TooLongLine

REJECTS_FILE = "rejects.jsonl"


class Reject(str, enum.Enum):
    """Why a record was not written; the value is what the manifest and rejects.jsonl say."""

    NO_LABEL = "no_label"          # fastText: does not start with __label__
    BAD_LABEL = "bad_label"        # an empty label, or one seen under --min-class-examples times in training
    UNKNOWN_LABEL = "unknown_label"  # a test record whose label is none of the training file's classes
    EMPTY_TEXT = "empty_text"      # a label and nothing else
    INVALID_UTF8 = "invalid_utf8"  # bytes that do not decode as UTF-8
    NUL_BYTE = "nul_byte"          # a NUL byte: binary data, not a review
    LINE_TOO_LONG = "line_too_long"  # fastText: over --max-line-bytes
    RECORD_TOO_LONG = "record_too_long"  # CSV/TSV/JSONL/Parquet: a record or text over --max-line-bytes
    MISSING_FIELD = "missing_field"  # no text or label field (or null), or an empty row
    BAD_ROW = "bad_row"            # unparseable: not JSON, not an object, a field count unlike the header's
    BAD_QUOTE = "bad_quote"        # CSV/TSV: a quote where none may be, or one never closed


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
    if isinstance(line, TooLongLine):
        record["num_bytes"] = line.num_bytes
        line = line.prefix  # only the start is kept; the limit bounds memory
    # backslashreplace keeps undecodable bytes visible and recoverable.
    record["raw"] = line.decode("utf-8", errors="backslashreplace")
    return json.dumps(record, ensure_ascii=False) + "\n"


class RejectLog:
    """Appends rejected lines to `rejects.jsonl.incomplete`; the total and each reason counted per source.

    A source is counted under the name it was given (`add`'s `source_name`),
    not its path, so two sources never share counts.
    """

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / REJECTS_FILE
        self._file = open(atomic.incomplete_path(self.path), "w", encoding="utf-8")
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.first: dict[str, str] = {}  # source name -> its first rejects.jsonl line
        self.total = 0

    def add(self, source_name: str, path: str, line_number: int, reason: Reject, line: bytes | TooLongLine) -> None:
        record = reject_line(path, line_number, reason, line)
        self._file.write(record)
        self.first.setdefault(source_name, record)
        self.counts[source_name][reason.value] += 1
        self.total += 1

    def finish(self) -> None:
        self._file.close()
        atomic.commit(atomic.incomplete_path(self.path), self.path)

    def discard(self) -> None:
        self._file.close()
        atomic.incomplete_path(self.path).unlink(missing_ok=True)
