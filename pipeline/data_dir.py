"""A data directory opened once: its manifest read and checked once, then asked.

Every command that reads a data directory (`fit`, `evaluate`, `stats`,
`verify`, the dataset functions) takes a `DataDir`, so one command parses
`manifest.json` once and checks the files at most once.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline import manifest as manifest_lib, text_settings
from pipeline.shard import writer as shard_writer
from pipeline.errors import DatasetError
from pipeline.labels import ClassesInfo


@dataclasses.dataclass(frozen=True)
class DataDir:
    path: Path
    manifest: manifest_lib.Manifest
    manifest_sha256: str    # identifies the exact data a run was trained or evaluated on

    @classmethod
    def read(cls, path: Path) -> "DataDir":
        """The directory and its manifest, without checking the files (`verify` checks them one by one)."""
        raw = manifest_lib.read_manifest_bytes(path)
        return cls(Path(path), manifest_lib.parse_manifest(path, raw), manifest_lib.manifest_sha256(raw))

    @classmethod
    def open(cls, path: Path, hashes: bool | tuple[str, ...] = False) -> "DataDir":
        """The directory, refused if a listed file is missing or has another size, or the vocabulary another
        hash; `hashes`: also every shard's hash (True), or those of the named splits (the ones a command reads)."""
        data = cls.read(path)
        manifest_lib.check_files_present(data.path, data.manifest, hashes=hashes)
        return data

    def split(self, name: str) -> manifest_lib.SplitInfo:
        if name not in self.manifest.splits:
            raise DatasetError(f"{self.path}: no split {name!r}; it has {sorted(self.manifest.splits)}.")
        return self.manifest.splits[name]

    def shard_paths(self, split: str) -> list[str]:
        return [str(self.path / shard.path) for shard in self.split(split).shards]

    def num_examples(self, split: str) -> int:
        return self.split(split).num_examples

    @property
    def compression(self) -> str:
        """The shards' compression as TensorFlow's readers name it."""
        return shard_writer.tf_compression(self.manifest.settings["compression"])

    @property
    def classes(self) -> ClassesInfo:
        """The class names in class-id order, the positive one (two classes), the record-id map."""
        return self.manifest.class_info()

    @property
    def vocab_sha256(self) -> str:
        return self.manifest.vocabulary.sha256

    def token_counts(self) -> list[int] | None:
        """Each vocabulary token's count in the training split; None for a directory sharded before they were kept."""
        counts_path = self.manifest.vocabulary.counts_path
        if counts_path is None:
            return None
        return [int(line) for line in (self.path / counts_path).read_text().split()]

    def vocabulary(self, vocab_size: int | None = None) -> list[str]:
        """The tokens of `vocab.txt`, most frequent first, as written by `shard`; with `vocab_size`, those of
        its first `vocab_size` ids (padding and [UNK] count as two)."""
        from pipeline.vocab import read_vocabulary  # vocab.py imports TensorFlow; opening a directory needs none

        tokens = read_vocabulary(self.path / self.manifest.vocabulary.path)
        return tokens if vocab_size is None else tokens[: vocab_size - text_settings.NUM_SPECIAL_TOKENS]
