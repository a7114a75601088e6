"""A data directory is opened once: DataDir reads and checks the manifest, then answers."""

import json
import shutil

import pytest
from click.testing import CliRunner

import cli
from pipeline import manifest as manifest_lib
from pipeline.data_dir import DataDir
from pipeline.errors import DatasetError
from pipeline.shard.writer import file_sha256


def test_answers_files_counts_compression_and_vocabulary(data_dir):
    data = DataDir.open(data_dir)
    raw = json.loads((data_dir / "manifest.json").read_text())
    assert data.num_examples("train") == raw["splits"]["train"]["num_examples"]
    assert [p.rsplit("/", 1)[1] for p in data.shard_paths("test")] == [
        s["path"] for s in raw["splits"]["test"]["shards"]]
    assert data.compression == ""
    assert data.vocabulary() == (data_dir / "vocab.txt").read_text().splitlines()
    assert data.manifest_sha256 == file_sha256(data_dir / "manifest.json")
    with pytest.raises(DatasetError, match="no split 'dev'"):
        data.split("dev")


def test_open_refuses_a_damaged_directory_that_read_accepts(data_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    (copy / DataDir.read(copy).manifest.splits["train"].shards[0].path).unlink()
    assert DataDir.read(copy).num_examples("train") > 0  # verify reads it to report file by file
    with pytest.raises(DatasetError, match="missing"):
        DataDir.open(copy)


@pytest.fixture
def manifest_reads(monkeypatch):
    """Counts how often any code parses a manifest.json."""
    reads = []
    real = manifest_lib.parse_manifest

    def counting(data_dir, raw):
        reads.append(data_dir)
        return real(data_dir, raw)

    monkeypatch.setattr(manifest_lib, "parse_manifest", counting)
    return reads


@pytest.mark.slow
def test_each_command_parses_the_manifest_once(data_dir, tmp_path, manifest_reads):
    runner = CliRunner()
    run = tmp_path / "run"
    fast = ["--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1", "--max-len", "16"]
    commands = [
        ["fit", "--model", "ffn", "--data", str(data_dir), "--out", str(run), "--epochs", "1", "--quiet",
         "--steps-per-epoch", "2", "--validation-steps", "1"],
        ["evaluate", str(run), "--data", str(data_dir)],
        ["stats", str(data_dir)],
        ["verify", str(data_dir)],
        ["report", str(run), "--data", str(data_dir), "--out", str(tmp_path / "report")],
        # Several runs, each fitted and evaluated, and the report: still one parse.
        ["study", "--data", str(data_dir), "--out", str(tmp_path / "study"), "--models", "ffn,linear", *fast],
        ["tune", "--model", "ffn", "--data", str(data_dir), "--out", str(tmp_path / "tuned"), "--tuner", "random",
         "--max-trials", "1", "--max-epochs", "1", *fast],
    ]
    for command in commands:
        manifest_reads.clear()
        result = runner.invoke(cli.cli, command)
        assert result.exit_code == 0, result.output
        assert len(manifest_reads) == 1, (command[0], manifest_reads)
