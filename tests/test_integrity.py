"""Tampered or foreign data is refused: every file read is checked against the manifest, paths stay inside
the data directory, and a label outside the classes stops training with a clear error."""

import json
import re
import shutil
import struct
from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from pipeline import verify
from pipeline.data_dir import DataDir
from pipeline.errors import DatasetError
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings
from pipeline.shard.writer import file_sha256


@pytest.fixture
def copy_of(data_dir, tmp_path):
    """A writable copy of the shared data directory."""
    copy = tmp_path / "data"
    shutil.copytree(data_dir, copy)
    return copy


def edit_manifest(data: Path, change) -> None:
    path = data / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_a_changed_vocabulary_is_refused_by_every_reader(copy_of, tmp_path):
    vocab = copy_of / "vocab.txt"
    tokens = vocab.read_text().splitlines()
    tokens[0], tokens[1] = tokens[1], tokens[0]  # same size, other ids
    vocab.write_text("\n".join(tokens) + "\n")
    with pytest.raises(DatasetError, match="vocab.txt: sha256 differs"):
        DataDir.open(copy_of)
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "linear", "--data", str(copy_of), "--out",
                                          str(tmp_path / "run"), "--epochs", "1"])
    assert result.exit_code == 1 and "vocab.txt: sha256 differs" in result.output, result.output
    assert not (tmp_path / "run").exists()


def test_changed_counts_are_refused(copy_of):
    counts = copy_of / "vocab_counts.txt"
    counts.write_text(counts.read_text().replace("1", "2", 1))
    with pytest.raises(DatasetError, match="vocab_counts.txt: sha256 differs"):
        DataDir.open(copy_of)


def test_evaluate_hashes_the_split_it_reads(copy_of):
    shard = next(copy_of.glob("test-*.tfrecord"))
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size: only a hash tells
    shard.write_bytes(raw)
    DataDir.open(copy_of, hashes=("train",))  # the train split is unchanged
    with pytest.raises(DatasetError, match=f"{shard.name}: sha256 differs"):
        DataDir.open(copy_of, hashes=("test",))


@pytest.mark.parametrize("path", ["/etc/passwd", "../outside.tfrecord", "sub/train.tfrecord", ".."])
def test_a_manifest_path_outside_the_directory_is_refused(copy_of, path):
    edit_manifest(copy_of, lambda m: m["splits"]["train"]["shards"][0].update(path=path))
    with pytest.raises(DatasetError, match="not a plain file name"):
        DataDir.read(copy_of)
    edit_manifest(copy_of, lambda m: (m["splits"]["train"]["shards"][0].update(path="train-00000-of-00003.tfrecord"),
                                      m["vocabulary"].update(path=path)))
    with pytest.raises(DatasetError, match="not a plain file name"):
        DataDir.read(copy_of)


def test_a_label_outside_the_classes_stops_fit_with_a_clear_error(copy_of, tmp_path):
    shard = copy_of / "train-00000-of-00003.tfrecord"
    with tf.io.TFRecordWriter(str(shard)) as writer:
        for label in (0, 1, 7):  # 7: no class of two
            feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a fine review"])),
                       "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())

    def point_at_new_shard(manifest):
        split = manifest["splits"]["train"]
        split["num_examples"] += 3 - split["shards"][0]["num_examples"]
        split["shards"][0].update(num_examples=3, bytes=shard.stat().st_size, sha256=file_sha256(shard))
    edit_manifest(copy_of, point_at_new_shard)  # a consistent manifest: only the label range can tell
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "linear", "--data", str(copy_of), "--out",
                                          str(tmp_path / "run"), "--epochs", "1", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "label outside the manifest's classes" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "model.keras").exists()


def verify_output(data: Path) -> tuple[int, dict[str, str]]:
    """`verify`'s exit code and its line for each file, by name."""
    result = CliRunner().invoke(cli.cli, ["verify", str(data)])
    lines = [line for line in result.output.splitlines() if line.startswith(("ok ", "BAD"))]
    return result.exit_code, {re.search(r"\S+\.(tfrecord(\.gz)?|txt)", line).group(0): line for line in lines}


def records_of(shard: Path) -> list[bytes]:
    return [record.numpy() for record in tf.data.TFRecordDataset(str(shard))]


def damage(shard: Path, how: str) -> None:
    """Damage a shard as disks, copies and hands do; each leaves the rest of the file as it was."""
    raw, first = shard.read_bytes(), len(records_of(shard)[0])
    if how == "flipped-byte":        # in the first record's data (12 bytes of framing before it)
        shard.write_bytes(raw[:20] + bytes([raw[20] ^ 0xFF]) + raw[21:])
    elif how == "cut-mid-record":
        shard.write_bytes(raw[:len(raw) - 7])
    elif how == "bad-length":        # the second record's length, its checksum left as it was
        second = 12 + first + 4
        shard.write_bytes(raw[:second] + struct.pack("<Q", 5) + raw[second + 8:])
    elif how == "hostile-length":    # a length of 2^62 with a valid checksum: read in chunks, never allocated
        length = struct.pack("<Q", 1 << 62)
        shard.write_bytes(raw + length + struct.pack("<I", verify.masked_crc(length)) + b"x" * 100)


@pytest.mark.parametrize("how, problem", [
    ("flipped-byte", "record 1: its data's checksum does not match"),
    ("cut-mid-record", "the file ends inside record"),
    ("bad-length", "record 2: its length's checksum does not match"),
    ("hostile-length", "ends inside record"),
])
def test_verify_finds_each_damaged_record_and_says_where(copy_of, how, problem):
    shard = copy_of / "train-00001-of-00003.tfrecord"
    damage(shard, how)
    if how != "hostile-length":   # that one ends a process whose TensorFlow reads it (2.21: no error raised)
        with pytest.raises(tf.errors.DataLossError):   # TensorFlow's reader agrees the file is damaged
            records_of(shard)
    exit_code, lines = verify_output(copy_of)
    assert exit_code == 1
    assert problem in lines[shard.name] and lines[shard.name].startswith("BAD"), lines[shard.name]
    assert all(line.startswith("ok ") for name, line in lines.items() if name != shard.name)


def test_verify_counts_records_where_the_manifest_was_rewritten_to_match_the_file(copy_of):
    shard = copy_of / "test-00000-of-00003.tfrecord"
    records = records_of(shard)
    with tf.io.TFRecordWriter(str(shard)) as writer:   # one more record than the manifest says
        for record in records + records[:1]:
            writer.write(record)
    expected = len(records) + 1

    def same_bytes_and_hash(manifest):
        manifest["splits"]["test"]["shards"][0].update(bytes=shard.stat().st_size, sha256=file_sha256(shard))
    edit_manifest(copy_of, same_bytes_and_hash)
    exit_code, lines = verify_output(copy_of)
    assert exit_code == 1
    assert lines[shard.name].endswith(f"{expected:,} records, the manifest says {expected - 1:,}")


def test_verify_reads_gzipped_shards_and_their_damage(corpus_files, tmp_path):
    train, test = corpus_files
    data = tmp_path / "gz"
    shard_corpus(ShardSettings(train=train, test=test, out=data, num_shards=2, vocab_size=2000, compression="gzip"))
    exit_code, lines = verify_output(data)
    manifest = DataDir.open(data).manifest
    assert exit_code == 0 and len(lines) == 6 + 2
    for shard in (shard for split in manifest.splits.values() for shard in split.shards):
        assert lines[shard.path].split()[:2] == ["ok", f"{shard.num_examples:,}"]
    shard = data / manifest.splits["train"].shards[0].path
    raw = shard.read_bytes()
    shard.write_bytes(raw[:len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0xFF]) + raw[len(raw) // 2 + 1:])
    exit_code, lines = verify_output(data)
    assert exit_code == 1 and "sha256 differs" in lines[shard.name] and "unreadable" in lines[shard.name]
