"""Tampered or foreign data is refused: every file read is checked against the manifest, paths stay inside
the data directory, and a label outside the classes stops training with a clear error."""

import json
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from pipeline.data_dir import DataDir
from pipeline.errors import DatasetError
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
