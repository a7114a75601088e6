"""One fastText line -> `(label, text)`, or the reason it is rejected.

The format: `__label__1 <text>` is negative (label 0), `__label__2 <text>`
positive (label 1). Nothing is guessed: a line that does not match exactly is
rejected with a reason, never repaired.
"""

from __future__ import annotations

import enum

from pipeline.sources import TooLongLine

LABEL_PREFIX = b"__label__"
LABELS = {b"1": 0, b"2": 1}
LABEL_NAMES = {0: "__label__1", 1: "__label__2"}


class Reject(str, enum.Enum):
    """Why a line was not written; the value is what the manifest and rejects.jsonl say."""

    NO_LABEL = "no_label"          # does not start with __label__
    BAD_LABEL = "bad_label"        # a label other than exactly 1 or 2 (e.g. 3, 2x, glued to text)
    EMPTY_TEXT = "empty_text"      # a label and nothing else
    INVALID_UTF8 = "invalid_utf8"  # bytes that do not decode as UTF-8
    NUL_BYTE = "nul_byte"          # a NUL byte: binary data, not a review
    LINE_TOO_LONG = "line_too_long"  # over --max-line-bytes


def parse_line(line: bytes | TooLongLine) -> tuple[int, bytes] | Reject:
    """`(label, text)` for a good line (text stripped of surrounding whitespace), else a Reject."""
    if isinstance(line, TooLongLine):
        return Reject.LINE_TOO_LONG
    if not line.startswith(LABEL_PREFIX):
        return Reject.NO_LABEL
    parts = line[len(LABEL_PREFIX):].split(None, 1)
    label = LABELS.get(parts[0]) if parts else None
    if label is None:
        return Reject.BAD_LABEL
    text = parts[1].strip() if len(parts) == 2 else b""
    if not text:
        return Reject.EMPTY_TEXT
    if b"\x00" in text:
        return Reject.NUL_BYTE
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return Reject.INVALID_UTF8
    return label, text
