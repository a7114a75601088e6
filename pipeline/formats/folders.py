"""A directory of class folders, as IMDB's aclImdb (train/pos/0_9.txt) and BBC News (business/001.txt) come:
one review per file, its class the name of the top folder it lies in."""

from __future__ import annotations

from typing import Iterator

from pipeline import sources
from pipeline.errors import SourceError
from pipeline.formats.base import Record, RecordReader
from pipeline.rejects import Reject

FIELDS = ("file", "folder")   # what the manifest names as the text and label "fields"


class FolderReader(RecordReader):
    name = "folders"
    suffixes = ()   # chosen for a directory (formats.format_of), never by a file's name
    help = ("The directory needs one folder per class, named as the class (pos/, neg/), each holding one review "
            "per file, as aclImdb/train does; a file beside the class folders has no class.")

    def records(self) -> Iterator[Record]:
        if not self.path.is_dir():
            raise SourceError(f"{self.path}: --format folders reads a directory of class folders, and this is a "
                              "file. Leave --format out to read it by its name.")
        self.fields = FIELDS
        self._bytes = 0
        for number, path in enumerate(sources.folder_files(self.path), 1):
            relative = path.relative_to(self.path)
            raw = str(relative).encode("utf-8", "surrogateescape")  # rejects.jsonl names the file
            in_class_folder = len(relative.parts) > 1
            if self.need_label and not in_class_folder:   # beside the class folders (a README, urls.txt)
                yield Record(number, Reject.NO_LABEL, raw)
            elif not path.is_file():       # a pipe, a socket, a dangling link: no review to read
                yield Record(number, Reject.BAD_ROW, raw)
            else:   # (`predict` needs no class: a file beside the folders is a review too)
                label = relative.parts[0] if in_class_folder else None
                yield Record(number, self._parse_fields(self._read(path), label, FIELDS), raw)

    @property
    def bytes_read(self) -> int:
        return getattr(self, "_bytes", 0)

    def _read(self, path) -> bytes:
        """The file's bytes, at most one over the limit: an over-long one is rejected, never held whole."""
        try:
            with open(path, "rb") as file:
                text = file.read(self.settings.max_record_bytes + 1)
        except OSError as exc:
            raise SourceError(f"{path}: cannot be read ({exc.strerror}). Make it readable, or move it out of "
                              f"{self.path}, and run again.") from exc
        self._bytes += len(text)
        return text
