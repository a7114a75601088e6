"""The formats a corpus comes in: fastText lines, CSV/TSV with a header, JSON lines, Parquet.

Each source is read once, lazily, in flat memory, as `Record`s: a number (the
line where the record ends, for rejects.jsonl), then `(label, text)` or the
`Reject` reason, and the raw bytes a reject keeps. Nothing is repaired: a row
that does not parse is rejected with its reason, never guessed at.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path
from typing import Iterator

from pipeline import sources
from pipeline.errors import SourceError
from pipeline.fasttext_format import parse_line
from pipeline.rejects import Reject, text_problem
from pipeline.sources import LineReader, TooLongLine

FORMATS = ("fasttext", "csv", "tsv", "jsonl", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# Tried in order when --text-field / --label-field are not given: the names Kaggle and HF exports use.
TEXT_FIELDS = ("text", "review", "content", "sentence", "review_text", "body", "comment")
LABEL_FIELDS = ("label", "sentiment", "rating", "stars", "score", "class", "polarity", "overall")
PARQUET_BATCH_ROWS = 4096


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


def detect_format(path: Path) -> str:
    """The format a file's name says (`reviews.csv.gz` is csv); fasttext for anything else."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes if suffix.lower() not in (".gz", ".bz2")]
    return SUFFIX_FORMATS.get(suffixes[-1], "fasttext") if suffixes else "fasttext"


def format_of(path: Path, settings: FormatSettings) -> str:
    return settings.format or detect_format(path)


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

    With `need_label=False` (predict) a label field is not required and every record's label is None.
    """

    def __init__(self, path: Path, settings: FormatSettings = FormatSettings(), need_label: bool = True):
        self.path = Path(path)
        self.settings = settings
        self.format = format_of(path, settings)
        self.need_label = need_label
        self.records_read = 0
        self.fields: tuple[str, str | None] | None = None  # the text and label fields, once the header is read
        self._lines: LineReader | None = None

    @property
    def bytes_read(self) -> int:
        """Decompressed bytes read so far (line-based formats), for progress bars."""
        return self._lines.bytes_read if self._lines is not None else 0

    def __iter__(self) -> Iterator[Record]:
        read = {"fasttext": self._fasttext, "jsonl": self._jsonl, "csv": self._delimited,
                "tsv": self._delimited, "parquet": self._parquet}[self.format]
        for record in read():
            self.records_read += 1
            yield record

    def _line_reader(self) -> LineReader:
        self._lines = LineReader(self.path, self.settings.max_record_bytes, self.settings.parallelism)
        return self._lines

    def _fasttext(self) -> Iterator[Record]:
        lines = self._line_reader()
        for line in lines:
            parsed = parse_line(line)
            if isinstance(parsed, tuple) and not self.need_label:
                parsed = (None, parsed[1])
            yield Record(lines.lines_read, parsed, line)

    def _jsonl(self) -> Iterator[Record]:
        lines = self._line_reader()
        fields = None
        for line in lines:
            if isinstance(line, TooLongLine):
                yield Record(lines.lines_read, Reject.RECORD_TOO_LONG, line)
                continue
            try:
                obj = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                yield Record(lines.lines_read, Reject.INVALID_UTF8, line)
                continue
            except ValueError:
                yield Record(lines.lines_read, Reject.BAD_ROW, line)
                continue
            if not isinstance(obj, dict):
                yield Record(lines.lines_read, Reject.BAD_ROW, line)
                continue
            if fields is None:  # the first object names the fields, as a header would
                fields = self._fields(list(obj))
            label_value = obj.get(fields[1]) if fields[1] else None
            yield Record(lines.lines_read, self._parse_fields(obj.get(fields[0]), label_value, fields), line)

    def _delimited(self) -> Iterator[Record]:
        delimiter = "," if self.format == "csv" else "\t"
        csv.field_size_limit(self.settings.max_record_bytes)  # a bad quote swallows at most this much
        with sources.open_source(self.path, self.settings.parallelism) as stream:
            # surrogateescape: undecodable bytes survive decoding and are rejected per row, not per file.
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
            reader = csv.reader(text, delimiter=delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                return
            except sources.READ_ERRORS as exc:
                raise sources.damaged_source(self.path, "its header", exc) from exc
            except csv.Error as exc:
                raise SourceError(f"{self.path}: line 1, the header, does not parse as {self.format.upper()} "
                                  f"({exc}). Check --format.") from exc
            fields = self._fields(header)
            indexes = [header.index(field) if field else None for field in fields]
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except sources.READ_ERRORS as exc:
                    raise sources.damaged_source(self.path, f"line {reader.line_num:,}", exc) from exc
                except csv.Error as exc:
                    reason = Reject.RECORD_TOO_LONG if "field larger" in str(exc) else Reject.BAD_QUOTE
                    yield Record(reader.line_num, reason, f"{exc}".encode())
                    continue
                raw = delimiter.join(row).encode("utf-8", errors="surrogateescape")
                if len(row) != len(header):
                    yield Record(reader.line_num, Reject.BAD_ROW if row else Reject.MISSING_FIELD, raw)
                    continue
                text_value = row[indexes[0]]
                label_value = row[indexes[1]] if indexes[1] is not None else None
                yield Record(reader.line_num, self._parse_fields(text_value, label_value, fields), raw)

    def _parquet(self) -> Iterator[Record]:
        if sources.compression_of(self.path) != "none":
            raise SourceError(f"{self.path}: a compressed Parquet file; Parquet compresses inside the file. "
                              "Decompress it first (`bunzip2` / `gunzip`).")
        import pyarrow.parquet  # only for Parquet sources

        try:
            parquet = pyarrow.parquet.ParquetFile(self.path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
            raise SourceError(f"{self.path}: not a readable Parquet file ({exc}). Check --format.") from exc
        fields = self._fields(parquet.schema_arrow.names)
        number = 0
        batches = parquet.iter_batches(PARQUET_BATCH_ROWS, columns=[field for field in fields if field])
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except sources.READ_ERRORS as exc:  # a damaged page: pyarrow's errors are OSError or ValueError
                raise sources.damaged_source(self.path, f"row {number:,}", exc) from exc
            columns = batch.to_pydict()
            texts = columns[fields[0]]
            labels = columns[fields[1]] if fields[1] else [None] * len(texts)
            for text_value, label_value in zip(texts, labels):
                number += 1
                raw = json.dumps({fields[0]: _jsonable(text_value), "label": _jsonable(label_value)},
                                 ensure_ascii=False).encode("utf-8", errors="surrogateescape")
                yield Record(number, self._parse_fields(text_value, label_value, fields), raw)

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
