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
from pipeline.rejects import RAW_BYTES_KEPT as RAW_PREFIX_BYTES, Reject, text_problem
from pipeline.sources import LineReader, TooLongLine

FORMATS = ("fasttext", "csv", "tsv", "jsonl", "parquet")
SUFFIX_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                  ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
# Tried in order when --text-field / --label-field are not given: the names Kaggle and HF exports use.
TEXT_FIELDS = ("text", "review", "content", "sentence", "review_text", "body", "comment")
LABEL_FIELDS = ("label", "sentiment", "rating", "stars", "score", "class", "polarity", "overall")
# A Parquet batch is whole in Arrow's memory before any of its rows is looked at, and a tiny zstd file can
# hold gigabytes of text. So (`parquet_batches`) a plain-encoded row group is read in batches of about
# PARQUET_BATCH_BYTES of values, as its metadata counts them (a page cannot decompress to more than its
# header says); a dictionary-encoded one of at most PARQUET_DICTIONARY_BYTES stays encoded as stored (200
# rows of one 100 kB text are 100 kB, not 20 MB); a larger dictionary-encoded one is read a few rows at a
# time. Rows become Python objects PARQUET_BATCH_BYTES at a time, never one over --max-line-bytes.
PARQUET_BATCH_ROWS = 4096        # rows per batch, at most
PARQUET_BATCH_BYTES = 8 << 20
PARQUET_DICTIONARY_BYTES = 64 << 20
PARQUET_FEW_ROWS = 8
# Arrow decompresses a whole data page at once, and a page may hold 1,024 values of any size: a row group
# whose text decompresses to this much and over this many times its stored size is a decompression bomb
# (review text compresses 3-10x), and its rows are rejected as `too_compressed` without being decompressed.
PARQUET_BOMB_BYTES = 64 << 20
PARQUET_BOMB_RATIO = 1000


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
            except RecursionError:  # `[[[[...` a few thousand deep: the line is bounded, the parser's stack is not
                yield Record(lines.lines_read, Reject.TOO_DEEP, line)
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
            lines = BoundedRows(text, self.settings.max_record_bytes)
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            try:
                header = next(reader)
            except StopIteration:
                return
            except sources.READ_ERRORS as exc:
                raise sources.damaged_source(self.path, "its header", exc) from exc
            except (csv.Error, RowTooLong) as exc:
                raise SourceError(f"{self.path}: line 1, the header, does not parse as {self.format.upper()} "
                                  f"({exc}). Check --format.") from exc
            lines.record_done()
            fields = self._fields(header)
            indexes = [header.index(field) if field else None for field in fields]
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except RowTooLong as exc:  # its bytes past the limit were never held
                    yield Record(lines.line_num, Reject.RECORD_TOO_LONG, exc.line)
                    continue
                except sources.READ_ERRORS as exc:
                    raise sources.damaged_source(self.path, f"line {lines.line_num:,}", exc) from exc
                except csv.Error as exc:
                    lines.record_done()
                    reason = Reject.RECORD_TOO_LONG if "field larger" in str(exc) else Reject.BAD_QUOTE
                    yield Record(lines.line_num, reason, f"{exc}".encode())
                    continue
                lines.record_done()
                raw = delimiter.join(row).encode("utf-8", errors="surrogateescape")
                if len(row) != len(header):
                    yield Record(lines.line_num, Reject.BAD_ROW if row else Reject.MISSING_FIELD, raw)
                    continue
                text_value = row[indexes[0]]
                label_value = row[indexes[1]] if indexes[1] is not None else None
                yield Record(lines.line_num, self._parse_fields(text_value, label_value, fields), raw)

    def _parquet(self) -> Iterator[Record]:
        if sources.compression_of(self.path) != "none":
            raise SourceError(f"{self.path}: a compressed Parquet file; Parquet compresses inside the file. "
                              "Decompress it first (`bunzip2` / `gunzip`).")
        import pyarrow.parquet  # only for Parquet sources

        try:
            schema = pyarrow.parquet.read_schema(self.path)
        except Exception as exc:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
            raise SourceError(f"{self.path}: not a readable Parquet file ({exc}). Check --format.") from exc
        fields = self._fields(schema.names)
        columns = [field for field in fields if field]
        number = 0
        batches = parquet_batches(self.path, columns, [c for c in columns if _is_text_type(schema.field(c).type)])
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except sources.READ_ERRORS as exc:  # a damaged page: pyarrow's errors are OSError or ValueError
                raise sources.damaged_source(self.path, f"row {number:,}", exc) from exc
            if isinstance(batch, BombRowGroup):  # never decompressed: each of its rows is one reject
                for _ in range(batch.num_rows):
                    number += 1
                    yield Record(number, Reject.TOO_COMPRESSED, batch.description.encode())
                continue
            for text_value, label_value, too_long in self._parquet_rows(batch, fields):
                number += 1
                if too_long is not None:
                    yield Record(number, Reject.RECORD_TOO_LONG, too_long)
                    continue
                raw = json.dumps({fields[0]: _jsonable(text_value), "label": _jsonable(label_value)},
                                 ensure_ascii=False).encode("utf-8", errors="surrogateescape")
                yield Record(number, self._parse_fields(text_value, label_value, fields), raw)

    def _parquet_rows(self, batch, fields) -> Iterator[tuple]:
        """(text, label, None) per row, as Python values; (None, None, the cut record) for one over the limit.

        Sizes come from Arrow's own lengths: a row over --max-line-bytes never becomes a Python object, and
        the others become Python objects PARQUET_BATCH_BYTES at a time.
        """
        texts = batch.column(fields[0])
        labels = batch.column(fields[1]) if fields[1] else None
        sizes = _arrow_sizes(texts) + (_arrow_sizes(labels) if labels is not None else 0)
        limit, start = self.settings.max_record_bytes, 0
        while start < batch.num_rows:
            if sizes[start] > limit:
                yield None, None, sources.TooLongLine(_arrow_prefix(texts[start]), int(sizes[start]))
                start += 1
                continue
            end, used = start, 0
            while end < batch.num_rows and sizes[end] <= limit and (end == start or used + sizes[end] <=
                                                                     PARQUET_BATCH_BYTES):
                used += sizes[end]
                end += 1
            text_values = texts.slice(start, end - start).to_pylist()
            label_values = labels.slice(start, end - start).to_pylist() if labels is not None else \
                [None] * len(text_values)
            yield from ((text, label, None) for text, label in zip(text_values, label_values))
            start = end

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


class RowTooLong(Exception):
    """A CSV/TSV record over the byte limit; `line` holds its start and its length so far."""

    def __init__(self, line: TooLongLine):
        super().__init__(f"a record over {len(line.prefix):,} bytes")
        self.line = line


class BoundedRows:
    """The physical lines of a text stream, for `csv.reader`, with a byte budget per record.

    `csv.field_size_limit` bounds one field, not a row: 4,000 fields of 1 kB each were held whole. Here a
    record whose lines pass `max_bytes` raises `RowTooLong` (the csv reader starts afresh at the next line),
    and the rest of the line that passed it is read in chunks and dropped, never held.
    """

    def __init__(self, text: io.TextIOBase, max_bytes: int):
        self.text, self.max_bytes = text, max_bytes
        self.line_num = 0      # physical lines read
        self._used = 0         # bytes of the record being read

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.max_bytes + 1)
        if not line:
            raise StopIteration
        self.line_num += 1
        size = len(line.encode("utf-8", errors="surrogateescape"))
        self._used += size
        if self._used <= self.max_bytes:
            return line
        prefix, total, self._used = line.encode("utf-8", errors="surrogateescape"), self._used, 0
        while line and line[-1] not in "\r\n":  # the rest of this line is read and dropped
            line = self.text.readline(sources.READ_CHUNK_BYTES)
            total += len(line.encode("utf-8", errors="surrogateescape"))
        raise RowTooLong(TooLongLine(prefix[:self.max_bytes], total))

    def record_done(self) -> None:
        """The csv reader finished a record: the next one starts with a full budget."""
        self._used = 0


@dataclasses.dataclass(frozen=True)
class BombRowGroup:
    """A Parquet row group too compressed to read (`parquet_batches`): how many rows it holds, and why."""

    num_rows: int
    description: str


def parquet_batches(path: Path, columns: list[str], text_columns: list[str]) -> Iterator:
    """A Parquet file's record batches of `columns`, each row group read so that memory stays bounded; a
    `BombRowGroup` in place of a row group whose text would decompress over PARQUET_BOMB_RATIO times."""
    import pyarrow.parquet

    dense = pyarrow.parquet.ParquetFile(path)
    encoded = pyarrow.parquet.ParquetFile(path, read_dictionary=text_columns) if text_columns else dense
    for group in range(dense.num_row_groups):
        row_group = dense.metadata.row_group(group)
        chunks = [row_group.column(index) for index in range(row_group.num_columns)
                  if row_group.column(index).path_in_schema in text_columns]
        unpacked = sum(chunk.total_uncompressed_size for chunk in chunks)
        packed = max(1, sum(chunk.total_compressed_size for chunk in chunks))
        if unpacked > PARQUET_BOMB_BYTES and unpacked > PARQUET_BOMB_RATIO * packed:
            yield BombRowGroup(row_group.num_rows, f"row group {group}: {unpacked:,} bytes of text stored in "
                                                   f"{packed:,} ({unpacked // packed:,}x): not decompressed")
            continue
        if not any(chunk.has_dictionary_page for chunk in chunks):
            reader, rows = dense, parquet_batch_rows(row_group)
        elif sum(chunk.total_uncompressed_size for chunk in chunks) <= PARQUET_DICTIONARY_BYTES:
            reader, rows = encoded, PARQUET_BATCH_ROWS  # Arrow's dictionary holds at most what the chunk does
        else:  # each row may be any of a large dictionary's entries, as often as it likes: a few at a time
            reader, rows = dense, PARQUET_FEW_ROWS
        yield from reader.iter_batches(rows, row_groups=[group], columns=columns)


def parquet_batch_rows(row_group) -> int:
    """Rows per batch so that one holds about PARQUET_BATCH_BYTES of the row group's decompressed values."""
    row_bytes = max(1, row_group.total_byte_size // max(1, row_group.num_rows))
    return max(1, min(PARQUET_BATCH_ROWS, PARQUET_BATCH_BYTES // row_bytes))


def _is_text_type(kind) -> bool:
    """A string or binary column (or a dictionary of them, as Arrow may have written it)."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or \
        pa.types.is_large_binary(kind)


def _arrow_sizes(column):
    """Each value's size in bytes, from Arrow's lengths (of a dictionary's entries, where it is one); 0 for
    scalars and nulls, the batch's mean for lists and structs."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_dictionary(kind) and _is_text_type(kind):
        lengths = pc.binary_length(column.dictionary)
        return pc.take(lengths, column.indices).fill_null(0).to_numpy(zero_copy_only=False)
    if _is_text_type(kind) and not pa.types.is_dictionary(kind):
        return pc.binary_length(column).fill_null(0).to_numpy(zero_copy_only=False)
    if pa.types.is_nested(kind):  # a list or struct where a text or label should be: the batch's mean size
        return np.full(len(column), column.nbytes // max(1, len(column)), dtype=np.int64)
    return np.zeros(len(column), dtype=np.int64)  # numbers, booleans: a few bytes each


def _arrow_prefix(value) -> bytes:
    """The first bytes of an over-long Arrow value (what rejects.jsonl keeps), without converting it whole."""
    value = getattr(value, "value", value) if type(value).__name__ == "DictionaryScalar" else value
    buffer = value.as_buffer() if hasattr(value, "as_buffer") else None
    return buffer[:RAW_PREFIX_BYTES].to_pybytes() if buffer is not None else b""
