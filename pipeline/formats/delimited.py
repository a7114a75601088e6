"""CSV and TSV with a header row naming a text and a label field; each record bounded before it is held."""

from __future__ import annotations

import csv
import io
from typing import Iterator

from pipeline import sources
from pipeline.errors import SourceError
from pipeline.formats.base import Record, RecordReader
from pipeline.rejects import Reject
from pipeline.sources import TooLongLine


class CsvReader(RecordReader):
    name = "csv"
    suffixes = (".csv",)
    help = "A CSV file needs a header row naming a text and a label field (--text-field, --label-field)."
    delimiter = ","

    def records(self) -> Iterator[Record]:
        delimiter = self.delimiter
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


class TsvReader(CsvReader):
    name = "tsv"
    suffixes = (".tsv", ".tab")
    help = "A TSV file needs a header row naming a text and a label field (--text-field, --label-field)."
    delimiter = "\t"


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
