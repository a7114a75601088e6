"""What every input format shares: a `Record`, the format settings, the field choice and a row's parsing.

A reader (one per format, `pipeline/formats/NAME.py`) reads its source once,
lazily, in flat memory, as `Record`s: a number (the line where the record ends,
for rejects.jsonl), then `(label, text)` or the `Reject` reason, and the raw
bytes a reject keeps. Nothing is repaired: a row that does not parse is
rejected with its reason, never guessed at. With `need_label=False` (`predict`)
a label is not required and every record's label is None.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

from pipeline import sources
from pipeline.errors import SourceError
from pipeline.rejects import Reject, text_problem
from pipeline.sources import LineReader, TooLongLine

# Tried in order when --text-field / --label-field are not given: the names Kaggle and HF exports use.
TEXT_FIELDS = ("text", "review", "content", "sentence", "review_text", "body", "comment")
LABEL_FIELDS = ("label", "sentiment", "rating", "stars", "score", "class", "polarity", "overall")


@dataclasses.dataclass(frozen=True)
class Record:
    number: int                       # the line (fastText, JSONL, CSV: where the row ends) or row (Parquet)
    parsed: tuple[str | None, bytes] | Reject   # (label, text stripped), or why it is rejected
    raw: bytes | TooLongLine          # what rejects.jsonl keeps of it


@dataclasses.dataclass(frozen=True)
class FormatSettings:
    format: str | None = None         # None: from the file name (fasttext when nothing else fits)
    text_field: str | None = None     # None: the first of TEXT_FIELDS the file has
    label_field: str | None = None    # None: the first of LABEL_FIELDS the file has
    max_record_bytes: int = sources.DEFAULT_MAX_LINE_BYTES
    parallelism: int | None = None


def choose_field(path: Path, columns: list[str], given: str | None, candidates: tuple[str, ...], what: str,
                 option: str) -> str:
    """The column to read: the one given, else the first candidate the file has; a clear error otherwise."""
    if given is not None:
        if given in columns:
            return given
        raise SourceError(f"{path}: no {what} field {given!r}; its fields are {columns[:20]}. Name one with "
                          f"{option}.")
    lowered = {column.lower(): column for column in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise SourceError(f"{path}: none of its fields {columns[:20]} is a {what} field reviewflow knows "
                      f"({', '.join(candidates)}). Name it with {option}.")


class RecordReader:
    """Iterates a source's `Record`s; `records_read` counts every one, good or rejected.

    A format's reader defines `name` (its `--format`), `suffixes` (the file names it is detected by), `help`
    (what a file of it must hold, for the error that finds none) and `records()`.
    """

    name = ""
    suffixes: tuple[str, ...] = ()
    help = ""

    def __init__(self, path: Path, settings: FormatSettings = FormatSettings(), need_label: bool = True):
        self.path = Path(path)
        self.settings = settings
        self.need_label = need_label
        self.records_read = 0
        self.fields: tuple[str, str | None] | None = None  # the text and label fields, once the header is read
        self._lines: LineReader | None = None

    @property
    def format(self) -> str:
        return self.name

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes read so far (line-based formats), for progress bars."""
        return self._lines.bytes_read if self._lines is not None else 0

    def __iter__(self) -> Iterator[Record]:
        for record in self.records():
            self.records_read += 1
            yield record

    def records(self) -> Iterator[Record]:
        raise NotImplementedError

    def _line_reader(self) -> LineReader:
        self._lines = LineReader(self.path, self.settings.max_record_bytes, self.settings.parallelism)
        return self._lines

    def _fields(self, columns: list[str]) -> tuple[str, str | None]:
        text_field = choose_field(self.path, columns, self.settings.text_field, TEXT_FIELDS, "text", "--text-field")
        label_field = None
        if self.need_label or self.settings.label_field is not None:
            label_field = choose_field(self.path, columns, self.settings.label_field, LABEL_FIELDS, "label",
                                       "--label-field")
        self.fields = (text_field, label_field)
        return self.fields

    def _parse_fields(self, text_value, label_value, fields) -> tuple[str | None, bytes] | Reject:
        """A record's text and label values -> (label, text bytes), or the reason it is rejected."""
        if text_value is None or (fields[1] is not None and self.need_label and label_value is None):
            return Reject.MISSING_FIELD
        if isinstance(text_value, bytes):
            text_bytes = text_value
        elif isinstance(text_value, str):
            try:
                text_bytes = text_value.encode("utf-8")
            except UnicodeEncodeError:  # an undecodable byte, kept as a surrogate by the CSV reader
                return Reject.INVALID_UTF8
        else:
            return Reject.BAD_ROW  # a number or a list where the text should be
        if len(text_bytes) > self.settings.max_record_bytes:
            return Reject.RECORD_TOO_LONG
        text_bytes = text_bytes.strip()
        if problem := text_problem(text_bytes):
            return problem
        if not self.need_label:
            return None, text_bytes
        label = label_name(label_value)
        return label if isinstance(label, Reject) else (label, text_bytes)


def label_name(value) -> str | Reject:
    """A field's label value as a class name: text stripped, integers (also 4.0) as digits; else a Reject."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return Reject.BAD_LABEL
    if not isinstance(value, str):
        return Reject.BAD_LABEL
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return Reject.INVALID_UTF8
    name = value.strip()
    return name if name else Reject.BAD_LABEL


def _jsonable(value):
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value
