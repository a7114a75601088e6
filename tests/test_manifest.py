"""The manifest: read once, its paths plain names inside the data directory, its hash the data's identity."""

import json

import pytest

from pipeline import manifest
from pipeline.errors import DatasetError


def test_a_written_manifest_reads_back_the_same_and_hashes_its_bytes(data_dir):
    read = manifest.read_manifest(data_dir)
    raw = manifest.read_manifest_bytes(data_dir)
    assert manifest.parse_manifest(data_dir, raw) == read
    assert manifest.Manifest.from_json(json.loads(json.dumps(read.to_json()))) == read
    assert manifest.manifest_sha256(raw) == manifest.manifest_sha256(raw) and len(manifest.manifest_sha256(raw)) == 64
    listed = manifest.listed_files(read)
    assert "vocab.txt" in listed and all((data_dir / name).is_file() for name in listed if name != read.rejects_path)


@pytest.mark.parametrize("name, plain", [("train-00000-of-00001.tfrecord", True), ("vocab.txt", True),
                                         ("/etc/passwd", False), ("../x", False), ("a/b", False), ("..", False),
                                         ("", False), ("a\\b", False), (3, False)])
def test_only_plain_names_are_files_of_the_directory(name, plain):
    assert manifest.is_plain_name(name) is plain


def test_a_manifest_naming_a_path_outside_is_refused(data_dir, tmp_path):
    obj = json.loads(manifest.read_manifest_bytes(data_dir))
    obj["vocabulary"]["path"] = "../../etc/passwd"
    with pytest.raises(DatasetError, match="not a plain file name"):
        manifest.parse_manifest(tmp_path, json.dumps(obj).encode())
    obj["format_version"] = -1
    with pytest.raises(DatasetError, match="format_version"):
        manifest.parse_manifest(tmp_path, json.dumps(obj).encode())
    with pytest.raises(DatasetError, match="no manifest.json"):
        manifest.read_manifest(tmp_path)
