"""JSON lines: one object per line with a text and a label field (the first object names them)."""

from __future__ import annotations

import json
from typing import Iterator

from pipeline.formats.base import Record, RecordReader
from pipeline.rejects import Reject
from pipeline.sources import TooLongLine


class JsonLinesReader(RecordReader):
    name = "jsonl"
    suffixes = (".jsonl", ".ndjson", ".json")
    help = "Each line must be one JSON object with a text and a label field (--text-field, --label-field)."

    def records(self) -> Iterator[Record]:
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
