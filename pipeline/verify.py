"""`verify`: a data directory checked against its manifest, shard by shard, record by record.

Each shard is read once: its sha256 over the file's bytes and, from the same bytes (decompressed where the
directory is gzipped), TFRecord's framing walked record by record with both CRC32C checks. No TensorFlow: its
start-up (~4 s) was most of `verify` on a small directory, and its reader read every shard a second time.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import struct
import zlib
from pathlib import Path

import google_crc32c

from pipeline import manifest as manifest_lib
from pipeline.data_dir import DataDir

# A record's data is checked in chunks of this many bytes: memory stays flat whatever length a record claims.
CHUNK_BYTES = 1 << 20
# TFRecord's framing: length (uint64, little-endian), its masked CRC32C (uint32); the data; the data's masked CRC32C.
HEADER = struct.Struct("<QI")
FOOTER = struct.Struct("<I")
CRC_MASK_DELTA = 0xA282EAD8


@dataclasses.dataclass(frozen=True)
class FileCheck:
    path: str
    problem: str | None      # None: the file is exactly as the manifest says
    num_examples: int | None = None


class UnreadableRecord(Exception):
    """A record whose framing or checksums do not hold (the message says which, and where)."""


def masked_crc(data: bytes | int) -> int:
    """TFRecord's masked CRC32C of `data` (or of an unmasked CRC already computed)."""
    crc = google_crc32c.value(data) if isinstance(data, bytes) else data
    return (((crc >> 15) | (crc << 17)) + CRC_MASK_DELTA) & 0xFFFFFFFF


class HashingReader:
    """A binary file whose bytes, as they are read, also go into a sha256 (the manifest's hash of the file)."""

    def __init__(self, file):
        self.file, self.sha256 = file, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.sha256.update(data)
        return data

    def hexdigest(self) -> str:
        while self.read(CHUNK_BYTES):   # what the record reader left (a gzip stream's end)
            pass
        return self.sha256.hexdigest()


def read_exactly(stream, size: int, what: str, number: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise UnreadableRecord(f"the file ends inside record {number:,} ({what})")
    return data


def check_data(stream, length: int, number: int) -> None:
    """Read a record's `length` bytes of data in chunks, then its footer, and compare the two checksums."""
    crc, left = 0, length
    while left:
        chunk = read_exactly(stream, min(left, CHUNK_BYTES), "its data", number)
        crc, left = google_crc32c.extend(crc, chunk), left - len(chunk)
    (expected,) = FOOTER.unpack(read_exactly(stream, FOOTER.size, "its data's checksum", number))
    if masked_crc(crc) != expected:
        raise UnreadableRecord(f"record {number:,}: its data's checksum does not match")


def count_records(stream) -> int:
    """Records in a TFRecord stream, each one's length and data checked against their CRC32C."""
    count = 0
    while header := stream.read(HEADER.size):
        number = count + 1
        if len(header) != HEADER.size:
            raise UnreadableRecord(f"the file ends inside record {number:,} (its length)")
        length, expected = HEADER.unpack(header)
        if masked_crc(header[:8]) != expected:
            raise UnreadableRecord(f"record {number:,}: its length's checksum does not match")
        check_data(stream, length, number)
        count = number
    return count


def walk_shard(path: Path, compression: str) -> tuple[str, int | str]:
    """(sha256 of the file, its records or what makes one unreadable), from one read of the file."""
    with open(path, "rb") as file:
        hashing = HashingReader(file)
        try:
            if compression == "GZIP":   # buffered: GzipFile's own read costs ~0.5 us a call, 3 calls a record
                with io.BufferedReader(gzip.GzipFile(fileobj=hashing, mode="rb"), CHUNK_BYTES) as stream:
                    records = count_records(stream)
            else:
                records = count_records(hashing)
        except UnreadableRecord as error:
            records = f"unreadable record: {error}"
        except (OSError, EOFError, zlib.error) as error:   # gzip.BadGzipFile is an OSError; so is a disk's error
            records = f"unreadable {'gzip stream' if compression == 'GZIP' else 'file'}: {error}"
        return hashing.hexdigest(), records


def check_shard(data_dir: Path, shard, compression: str) -> FileCheck:
    problem = manifest_lib.file_problem(data_dir, shard.path, shard.bytes)
    if problem == "missing":
        return FileCheck(shard.path, problem)
    sha256, records = walk_shard(Path(data_dir) / shard.path, compression)
    if problem is None and sha256 != shard.sha256:
        problem = manifest_lib.SHA256_DIFFERS
    if isinstance(records, str):
        return FileCheck(shard.path, f"{problem}; {records}" if problem else records)
    if problem is None and records != shard.num_examples:
        problem = f"{records:,} records, the manifest says {shard.num_examples:,}"
    return FileCheck(shard.path, problem, records)


def verify_data_dir(data: DataDir) -> list[FileCheck]:
    """One check per shard and for the vocabulary and its counts; a problem names what is wrong."""
    checks = [check_shard(data.path, shard, data.compression)
              for split in data.manifest.splits.values() for shard in split.shards]
    vocabulary = data.manifest.vocabulary  # the manifest records its hash, not its size
    checks.append(FileCheck(vocabulary.path,
                            manifest_lib.file_problem(data.path, vocabulary.path, sha256=vocabulary.sha256),
                            vocabulary.num_tokens_in_file))
    if vocabulary.counts_path and vocabulary.counts_sha256:
        checks.append(FileCheck(vocabulary.counts_path, manifest_lib.file_problem(
            data.path, vocabulary.counts_path, sha256=vocabulary.counts_sha256), vocabulary.num_tokens_in_file))
    return checks


def summary_lines(checks: list[FileCheck]) -> list[str]:
    """One line per file: ok or BAD, its records and what is wrong."""
    return [f"{'ok ' if check.problem is None else 'BAD'} "
            f"{f'{check.num_examples:>10,}' if check.num_examples is not None else ' ' * 10}  {check.path}"
            + (f": {check.problem}" if check.problem else "") for check in checks]
