"""Parquet: a text and a label column, read a row group at a time so that memory stays bounded."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Iterator

from pipeline import sources
from pipeline.errors import SourceError
from pipeline.formats.base import Record, RecordReader, _jsonable
from pipeline.rejects import RAW_BYTES_KEPT as RAW_PREFIX_BYTES, Reject

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


class ParquetReader(RecordReader):
    name = "parquet"
    suffixes = (".parquet", ".pq")
    help = "The Parquet file needs a text and a label column (--text-field, --label-field)."

    def records(self) -> Iterator[Record]:
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
    import pyarrow as pa

    value = value.value if isinstance(value, pa.DictionaryScalar) else value
    buffer = value.as_buffer() if hasattr(value, "as_buffer") else None
    return buffer[:RAW_PREFIX_BYTES].to_pybytes() if buffer is not None else b""
