"""The input formats, one reader per file: the registry that `shard`, `predict` and `stats` read through.

Adding a format is its reader, `pipeline/formats/NAME.py` (a `RecordReader` with `name`, `suffixes`, `help`
and `records()`), and one entry in `READERS` below; the test matrices are made from it. Importing this
package imports no TensorFlow (nor pyarrow, until a Parquet file is read).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.formats.base import (  # noqa: F401 - what every caller of a reader needs
    LABEL_FIELDS, TEXT_FIELDS, FormatSettings, Record, RecordReader, label_name)
from pipeline.formats.delimited import CsvReader, TsvReader
from pipeline.formats.fasttext import FastTextReader
from pipeline.formats.folders import FolderReader
from pipeline.formats.jsonl import JsonLinesReader
from pipeline.formats.parquet import ParquetReader

READERS = {reader.name: reader for reader in (FastTextReader, CsvReader, TsvReader, JsonLinesReader, ParquetReader,
                                              FolderReader)}
FORMATS = tuple(READERS)
SUFFIX_FORMATS = {suffix: reader.name for reader in READERS.values() for suffix in reader.suffixes}
DEFAULT_FORMAT = FastTextReader.name


def detect_format(path: Path) -> str:
    """The format a file's name says (`reviews.csv.gz` is csv); fasttext for anything else."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes if suffix.lower() not in (".gz", ".bz2")]
    return SUFFIX_FORMATS.get(suffixes[-1], DEFAULT_FORMAT) if suffixes else DEFAULT_FORMAT


def format_of(path: Path, settings: FormatSettings) -> str:
    """`--format` if given; else a directory is class folders, and a file's name says."""
    return settings.format or (FolderReader.name if Path(path).is_dir() else detect_format(path))


def open_records(path: Path, settings: FormatSettings = FormatSettings(), need_label: bool = True) -> RecordReader:
    """The reader of `path`'s format (`settings.format`, or its name's): iterate it for its `Record`s."""
    return READERS[format_of(path, settings)](path, settings, need_label)
