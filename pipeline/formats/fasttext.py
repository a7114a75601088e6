"""fastText lines: `__label__NAME <text>` (the Amazon Reviews files); for `predict`, plain lines too."""

from __future__ import annotations

from typing import Iterator

from pipeline.fasttext_format import parse_line, strip_label
from pipeline.formats.base import Record, RecordReader
from pipeline.sources import TooLongLine


class FastTextReader(RecordReader):
    name = "fasttext"
    suffixes = ()   # the format of a file no other reader's suffix names
    help = ("Each line must be `__label__NAME <text>`, fastText's format, as in the Amazon Reviews files: "
            "`__label__1 <text>` (negative) or `__label__2 <text>` (positive). For CSV, TSV, JSON lines or "
            "Parquet, name the file so (.csv, .tsv, .jsonl, .parquet) or give --format.")

    def records(self) -> Iterator[Record]:
        lines = self._line_reader()
        for line in lines:
            if self.need_label:
                yield Record(lines.lines_read, parse_line(line), line)
            else:  # predict: every line is a review, its label (if any) left out; none is rejected
                raw = line.prefix if isinstance(line, TooLongLine) else line  # only the first tokens count anyway
                yield Record(lines.lines_read, (None, strip_label(raw.rstrip(b"\r"))), line)
