"""One fastText line -> `(label, text)`, or the reason it is rejected.

The format: `__label__NAME <text>`, any NAME (Amazon polarity's `1` is
negative and `2` positive; Amazon and Yelp Full use `1`..`5`). Whether NAME is
a class is the class table's call (`pipeline/labels.py`): a label seen only a
few times, such as `__label__2x`, is rejected there. Nothing is guessed: a
line that does not match is rejected with a reason, never repaired.
"""

from __future__ import annotations

from pipeline.rejects import Reject, text_problem
from pipeline.sources import TooLongLine

LABEL_PREFIX = b"__label__"
LABEL_PREFIX_TEXT = LABEL_PREFIX.decode()


def strip_label(line: bytes) -> bytes:
    """A line's text without its leading `__label__NAME` token (what `predict` scores); other lines unchanged."""
    if line.startswith(LABEL_PREFIX):
        parts = line.split(None, 1)
        return parts[1] if len(parts) == 2 else b""
    return line


def parse_line(line: bytes | TooLongLine) -> tuple[str, bytes] | Reject:
    """`(label name, text)` for a good line (text stripped of surrounding whitespace), else a Reject."""
    if isinstance(line, TooLongLine):
        return Reject.LINE_TOO_LONG
    if not line.startswith(LABEL_PREFIX):
        return Reject.NO_LABEL
    parts = line[len(LABEL_PREFIX):].split(None, 1)
    if not parts:
        return Reject.BAD_LABEL
    try:
        label = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return Reject.INVALID_UTF8
    text = parts[1].strip() if len(parts) == 2 else b""
    return text_problem(text) or (label, text)
