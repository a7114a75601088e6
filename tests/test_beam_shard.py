"""`shard --runner beam` on Beam's in-process runner, checked against the local command's output."""

import pytest
import tempfile

from click.testing import CliRunner

import cli
from pipeline.manifest import read_manifest

pytest.importorskip("apache_beam", reason="the [beam] extra is not installed (make test installs it)")

from test_shard_corpus import read_split  # noqa: E402


def shard_with_beam(train, test, out, *options):
    return CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(out),
                                        "--runner", "beam", *options])


@pytest.fixture(scope="module")
def beam_dir(corpus_files, tmp_path_factory):
    """The conftest corpus sharded by Beam with the settings of the local `data_dir` fixture; Python's temporary
    directory, while it runs, is the empty `tmp` beside `shards`."""
    out = tmp_path_factory.mktemp("beam") / "shards"
    scratch = out.parent / "tmp"
    scratch.mkdir()
    tempfile.tempdir, usual = str(scratch), tempfile.tempdir
    try:
        result = shard_with_beam(*corpus_files, out, "--num-shards", "3", "--vocab-size", "2000")
    finally:
        tempfile.tempdir = usual
    assert result.exit_code == 0, result.output
    return out


def test_same_counts_vocabulary_and_rejects_as_the_local_command(beam_dir, data_dir):
    local, beam = read_manifest(data_dir), read_manifest(beam_dir)
    assert beam.sources == local.sources  # lines read, written, rejected by reason; sizes and hashes
    assert beam.vocabulary == local.vocabulary
    assert (beam_dir / "vocab.txt").read_bytes() == (data_dir / "vocab.txt").read_bytes()
    assert beam.num_rejected == local.num_rejected
    assert beam.settings == {**local.settings, "runner": "beam", "out": str(beam_dir)}
    for name, split in local.splits.items():
        assert beam.splits[name].num_examples == split.num_examples
        assert beam.splits[name].label_counts == split.label_counts
        assert beam.splits[name].length_counts == split.length_counts and split.length_counts
        assert [shard.path for shard in beam.splits[name].shards] == [shard.path for shard in split.shards]
        assert sum(shard.num_examples for shard in beam.splits[name].shards) == split.num_examples

    def rejects(directory):
        return sorted((directory / "rejects.jsonl").read_text(encoding="utf-8").splitlines())
    assert rejects(beam_dir) == rejects(data_dir)


def test_same_examples_in_every_split(beam_dir, data_dir):
    for split in ("train", "validation", "test"):
        assert sorted(read_split(beam_dir, split)) == sorted(read_split(data_dir, split))


def test_beam_directory_verifies_and_holds_only_the_dataset(beam_dir):
    result = CliRunner().invoke(cli.cli, ["verify", str(beam_dir)])
    assert result.exit_code == 0, result.output
    assert not list(beam_dir.glob("beam-*"))  # no staging directories, no report left behind
    # Nor in the temporary directory: DirectRunner's try of Prism left an empty beam-temp* there every run.
    # (TensorFlow's autograph writes its generated code there too, and removes it when the process exits.)
    left = [path.name for path in (beam_dir.parent / "tmp").iterdir()]
    assert [name for name in left if not name.startswith("__autograph_generated_file")] == []


def test_gzip_shards_from_beam_are_readable(corpus_files, tmp_path):
    out = tmp_path / "gz"
    result = shard_with_beam(*corpus_files, out, "--num-shards", "2", "--compression", "gzip",
                             "--beam-option", "direct_num_workers=2",
                             "--beam-option", "direct_running_mode=multi_threading")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert all(shard.path.endswith(".tfrecord.gz") for shard in manifest.splits["train"].shards)
    assert len(read_split(out, "test", "GZIP")) == manifest.splits["test"].num_examples
    assert CliRunner().invoke(cli.cli, ["verify", str(out)]).exit_code == 0


def test_truncated_source_fails_cleanly_and_leaves_nothing_complete(corpus_files, tmp_path):
    train, test = corpus_files
    truncated = tmp_path / "truncated.ft.txt.bz2"
    truncated.write_bytes(train.read_bytes()[: train.stat().st_size // 2])
    out = tmp_path / "out"
    result = shard_with_beam(truncated, test, out, "--num-shards", "2")
    assert result.exit_code == 1
    assert str(truncated) in result.output and "truncated or corrupt" in result.output
    assert "Traceback" not in result.output
    # Found while its first lines are read, before anything is made; later, only reviewflow's marker and lock stay.
    assert not out.exists() or sorted(path.name for path in out.iterdir()) == [".lock", ".reviewflow"]


def test_beam_options_are_key_value_and_only_for_beam(corpus_files, tmp_path):
    train, test = corpus_files
    bad = shard_with_beam(train, test, tmp_path / "a", "--beam-option", "DirectRunner")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output
    local = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out",
                                         str(tmp_path / "b"), "--beam-option", "runner=DirectRunner"])
    assert local.exit_code == 1 and "--runner beam" in local.output
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_beam_refuses_a_source_with_no_valid_line(corpus_files, tmp_path):
    csv = tmp_path / "reviews.csv"
    csv.write_text("label,text\n1,awful product\n2,great product\n")
    out = tmp_path / "out"
    result = shard_with_beam(csv, corpus_files[1], out, "--num-shards", "1", "--format", "fasttext")
    assert result.exit_code == 1, result.output
    assert "reviews.csv: none of its 3 lines" in result.output and "line 1" in result.output
    assert "no_label" in result.output and "Traceback" not in result.output
    assert not out.exists()  # nothing of the run is left, not even the directory it made


def test_test_fraction_splits_as_the_local_command(corpus_files, tmp_path):
    """One file split three ways (`--test-fraction`): Beam routes each line where the local runner does."""
    local, beam = tmp_path / "local", tmp_path / "beam"
    for out, runner in ((local, "local"), (beam, "beam")):
        result = CliRunner().invoke(cli.cli, ["shard", "--train", str(corpus_files[0]), "--test-fraction", "0.25",
                                              "--out", str(out), "--runner", runner])
        assert result.exit_code == 0, result.output
    assert read_manifest(beam).sources == read_manifest(local).sources
    for split in ("train", "validation", "test"):
        assert sorted(read_split(beam, split)) == sorted(read_split(local, split)) and read_split(local, split)
