"""`rejects.jsonl`: every line that was not written, with its source, line number and reason."""

from __future__ import annotations

import collections
import json
from pathlib import Path

from pipeline import atomic
from pipeline.fasttext_format import Reject
from pipeline.sources import TooLongLine

REJECTS_FILE = "rejects.jsonl"


def reject_line(source: str, line_number: int, reason: Reject, line: bytes | TooLongLine) -> str:
    """One line of rejects.jsonl (with its newline): where the line was, why, and its bytes."""
    record = {"source": source, "line": line_number, "reason": reason.value}
    if isinstance(line, TooLongLine):
        record["num_bytes"] = line.num_bytes
        line = line.prefix  # only the start is kept; the limit bounds memory
    # backslashreplace keeps undecodable bytes visible and recoverable.
    record["raw"] = line.decode("utf-8", errors="backslashreplace")
    return json.dumps(record, ensure_ascii=False) + "\n"


class RejectLog:
    """Appends rejected lines to `rejects.jsonl.incomplete`; the total and each reason counted per source.

    A source is counted under the name it was given (`add`'s `source_name`),
    not its path, so two sources never share counts.
    """

    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / REJECTS_FILE
        self._file = open(atomic.incomplete_path(self.path), "w", encoding="utf-8")
        self.counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.first: dict[str, str] = {}  # source name -> its first rejects.jsonl line
        self.total = 0

    def add(self, source_name: str, path: str, line_number: int, reason: Reject, line: bytes | TooLongLine) -> None:
        record = reject_line(path, line_number, reason, line)
        self._file.write(record)
        self.first.setdefault(source_name, record)
        self.counts[source_name][reason.value] += 1
        self.total += 1

    def finish(self) -> None:
        self._file.close()
        atomic.commit(atomic.incomplete_path(self.path), self.path)

    def discard(self) -> None:
        self._file.close()
        atomic.incomplete_path(self.path).unlink(missing_ok=True)
