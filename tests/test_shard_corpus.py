import bz2
import json
from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli

from pipeline import synthetic
from pipeline.errors import DatasetError, ReviewflowError, SourceError
from pipeline.fasttext_format import parse_line
from pipeline.manifest import read_manifest
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings
from pipeline.shard.plan import hash_share
from conftest import cli_in_a_new_process


def read_split(data_dir, split, compression=""):
    manifest = read_manifest(data_dir)
    files = [str(data_dir / shard.path) for shard in manifest.splits[split].shards]
    features = {"text": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}
    dataset = tf.data.TFRecordDataset(files, compression_type=compression)
    return [(int(ex["label"]), ex["text"].numpy()) for ex in
            dataset.map(lambda record: tf.io.parse_single_example(record, features))]


def source_lines(path):
    return bz2.open(path).read().split(b"\n")[:-1]


def test_round_trip_every_valid_line_once_with_label(data_dir, corpus_files):
    train, test = corpus_files
    # __label__1 and __label__2 are record ids 0 and 1, as they always were
    as_records = lambda parsed: (int(parsed[0]) - 1, parsed[1])  # noqa: E731
    expected_train = sorted(as_records(p) for p in map(parse_line, source_lines(train))
                            if isinstance(p, tuple) and p[0] in ("1", "2"))  # a rare __label__2x is no class
    expected_test = sorted(as_records(parse_line(line)) for line in source_lines(test))
    got_train = sorted(read_split(data_dir, "train") + read_split(data_dir, "validation"))
    assert got_train == expected_train
    assert sorted(read_split(data_dir, "test")) == expected_test


def test_validation_split_is_the_hash_holdout(data_dir):
    validation = read_split(data_dir, "validation")
    assert validation and all(hash_share(label, text, 0) < 0.2 for label, text in validation)
    assert not any(hash_share(label, text, 0) < 0.2 for label, text in read_split(data_dir, "train"))
    manifest = read_manifest(data_dir)
    share = manifest.splits["validation"].num_examples / (
        manifest.splits["validation"].num_examples + manifest.splits["train"].num_examples)
    assert 0.15 < share < 0.25


def test_manifest_accounts_for_every_line(data_dir, corpus_files):
    manifest = read_manifest(data_dir)
    rejects = [json.loads(line) for line in (data_dir / "rejects.jsonl").read_text().splitlines()]
    for source, path in zip(manifest.sources, corpus_files):
        assert source.lines_read == len(source_lines(path))
        assert source.lines_read == source.written + sum(source.rejected.values())
        assert sum(source.rejected.values()) == sum(r["source"] == source.path for r in rejects)
    train_source = manifest.sources[0]
    assert set(train_source.rejected) == {"no_label", "bad_label", "empty_text", "invalid_utf8", "nul_byte"}
    assert train_source.written == manifest.splits["train"].num_examples + manifest.splits["validation"].num_examples
    for name, split in manifest.splits.items():
        assert split.num_examples == sum(shard.num_examples for shard in split.shards)
        assert split.num_examples == sum(split.label_counts.values())
        assert split.num_examples == len(read_split(data_dir, name))
    lines = source_lines(corpus_files[0])
    for reject in rejects[:20]:  # each reject points at its line, kept recoverably
        raw = lines[reject["line"] - 1].decode("utf-8", errors="backslashreplace")
        assert reject["raw"] == raw


def test_shards_are_named_and_hashed(data_dir):
    manifest = read_manifest(data_dir)
    names = [shard.path for shard in manifest.splits["train"].shards]
    assert names == [f"train-{i:05d}-of-00003.tfrecord" for i in range(3)]
    assert not list(data_dir.glob("*.incomplete"))
    assert manifest.vocabulary.size == 2000
    assert len((data_dir / "vocab.txt").read_text().splitlines()) == 1998


def test_deterministic_output(tmp_path, corpus_files):
    train, test = corpus_files
    manifests = []
    for run in ("a", "b"):
        manifest = shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "same", num_shards=2,
                                              compression="gzip", overwrite=True))
        manifests.append(manifest)
    hashes = [{s.path: s.sha256 for split in m.splits.values() for s in split.shards} for m in manifests]
    assert hashes[0] == hashes[1]
    assert manifests[0].vocabulary.sha256 == manifests[1].vocabulary.sha256
    assert all(name.endswith(".tfrecord.gz") for name in hashes[0])
    assert read_split(tmp_path / "same", "test", "GZIP")


def test_truncated_bz2_fails_without_manifest(tmp_path, corpus_files):
    train, test = corpus_files
    cut = tmp_path / "cut.ft.txt.bz2"
    data = synthetic.write_corpus(tmp_path / "full.ft.txt.bz2", 3000, seed=9).read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="cut.ft.txt.bz2"):
        shard_corpus(ShardSettings(train=cut, test=test, out=out))
    assert not (out / "manifest.json").exists()
    assert not list(out.glob("*.tfrecord*")) and not list(out.glob("*.incomplete"))


def test_refuses_existing_dataset_unless_overwrite(tmp_path, corpus_files):
    train, test = corpus_files
    out = tmp_path / "out"
    shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=2))
    with pytest.raises(DatasetError, match="--overwrite"):
        shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=1))
    assert len(read_manifest(out).splits["train"].shards) == 2
    shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=1, overwrite=True))
    assert sorted(p.name for p in out.glob("train-*")) == ["train-00000-of-00001.tfrecord"]


def test_refuses_directory_with_other_files(tmp_path, corpus_files):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # --overwrite deletes only what reviewflow wrote: it refuses too
        with pytest.raises(ReviewflowError, match=r"1 file\(s\) reviewflow did not write \(notes.txt\)"):
            shard_corpus(ShardSettings(train=corpus_files[0], test=corpus_files[1], out=out, overwrite=overwrite))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # not even a lock file was left
    assert (out / "notes.txt").read_text() == "mine"


def test_interrupted_run_is_cleaned_without_overwrite(tmp_path, corpus_files):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").touch()  # every shard run, also an older reviewflow's, makes its lock file first
    (out / "train-00000-of-00002.tfrecord.incomplete").write_bytes(b"partial")
    (out / "vocab.txt").write_text("stale\n")
    manifest = shard_corpus(ShardSettings(train=corpus_files[0], test=corpus_files[1], out=out, num_shards=1))
    assert not (out / "train-00000-of-00002.tfrecord.incomplete").exists()
    assert (out / "vocab.txt").read_text().splitlines()[0] != "stale"
    assert manifest.splits["train"].num_examples > 0


def test_over_long_lines_are_rejected_not_held(tmp_path, corpus_files):
    train = tmp_path / "long.ft.txt"
    train.write_bytes(b"__label__1 short review\n__label__2 " + b"word " * 5000 + b"\n__label__2 fine\n")
    test = tmp_path / "test.ft.txt"
    test.write_bytes(b"__label__1 a test review\n")
    manifest = shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "out",
                                          max_line_bytes=1000, val_fraction=0.0))
    assert manifest.sources[0].rejected == {"line_too_long": 1}
    assert manifest.sources[0].written == 2
    reject = json.loads((tmp_path / "out" / "rejects.jsonl").read_text())
    assert reject["line"] == 2 and reject["num_bytes"] == 11 + 5 * 5000 and len(reject["raw"]) == 1000


def test_leftovers_of_a_killed_beam_run_are_removed_without_asking(corpus_files, tmp_path):
    out = tmp_path / "out"
    staging = out / "beam-temp-train-0123abcd0123abcd0123abcd0123abcd"  # Beam's name: a uuid1 hex
    staging.mkdir(parents=True)
    (out / ".lock").touch()
    (staging / "0123.tfrecord").write_bytes(b"partial")
    (out / "beam-report.jsonl").write_text("{}\n")
    (out / "train-00000-of-00002.tfrecord").write_bytes(b"partial")  # no manifest: an interrupted run
    train, test = corpus_files
    shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=2, vocab_size=500))
    assert not staging.exists() and not (out / "beam-report.jsonl").exists()
    assert read_manifest(out).splits["train"].shards[0].num_examples > 0


def test_a_source_with_no_valid_line_is_refused_with_its_first_reject(tmp_path, corpus_files):
    csv = tmp_path / "reviews.csv"
    csv.write_text("label,text\n1,awful product\n2,great product\n")
    out = tmp_path / "out"
    with pytest.raises(SourceError) as error:
        # read as fastText (a .csv name alone would now be read as CSV: tests/test_shard_formats.py)
        shard_corpus(ShardSettings(train=csv, test=corpus_files[1], out=out, format="fasttext"))
    message = str(error.value)
    assert "reviews.csv" in message and "none of its 3 lines" in message
    assert "line 1" in message and "no_label" in message and "'label,text'" in message
    assert "__label__1 <text>" in message  # says what the format is
    # "Nothing was written": not even the directory (and its parents) the run made; it left an empty one behind.
    assert not out.exists()
    empty = tmp_path / "empty.ft.txt"
    empty.write_bytes(b"")
    nested = tmp_path / "new" / "data"
    with pytest.raises(SourceError, match="empty.ft.txt: the file holds no lines"):
        shard_corpus(ShardSettings(train=corpus_files[0], test=empty, out=nested))
    assert not (tmp_path / "new").exists()
    out.mkdir()   # a directory the user made is kept, as empty as it was: no marker, no lock left in it
    with pytest.raises(SourceError):
        shard_corpus(ShardSettings(train=corpus_files[0], test=empty, out=out))
    assert out.is_dir() and list(out.iterdir()) == []
    (out / "notes.txt").write_text("mine")   # a user's file: refused before anything is written, untouched
    with pytest.raises(ReviewflowError):
        shard_corpus(ShardSettings(train=corpus_files[0], test=empty, out=out))
    assert [path.name for path in out.iterdir()] == ["notes.txt"]


def test_a_failed_run_cleans_up_before_another_run_can_take_the_directory(tmp_path, corpus_files, monkeypatch):
    """A failed run removes its marker and lock while it still holds the lock (once released, a second run may
    claim the directory, and its marks would go with the first's); a run refused because another holds the lock
    leaves the other's marks alone."""
    import fcntl

    from pipeline import ownership
    from pipeline.shard import output_dir

    def lock_is_free(directory: Path) -> bool:
        with open(directory / ".lock", "a") as lock:  # another open file: flock conflicts as another process's
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            fcntl.flock(lock, fcntl.LOCK_UN)
            return True

    empty = tmp_path / "empty.ft.txt"
    empty.write_bytes(b"")
    out = tmp_path / "new" / "data"
    seen = []
    remove_if_bare = output_dir.remove_if_bare
    monkeypatch.setattr(output_dir, "remove_if_bare", lambda made, emptied=None: (
        seen.append(lock_is_free(out)), remove_if_bare(made, emptied)))
    with pytest.raises(SourceError):
        shard_corpus(ShardSettings(train=corpus_files[0], test=empty, out=out))
    assert seen == [False] and not (tmp_path / "new").exists()
    monkeypatch.undo()

    # Another run makes and claims the directory between this one's checks and its lock, and holds the lock.
    locked = output_dir.locked
    held = []

    def another_run_first(directory):
        ownership.claim(directory, output_dir.DATA_LAYOUT)
        held.append(open(directory / ".lock", "w"))
        fcntl.flock(held[0], fcntl.LOCK_EX)
        return locked(directory)

    monkeypatch.setattr(output_dir, "locked", another_run_first)
    with pytest.raises(DatasetError, match="another reviewflow process is writing here"):
        shard_corpus(ShardSettings(train=corpus_files[0], test=corpus_files[1], out=out))
    assert sorted(path.name for path in out.iterdir()) == [".lock", ".reviewflow"]  # the other run's, kept
    held[0].close()


def test_a_train_split_without_examples_is_refused(tmp_path, corpus_files):
    train = tmp_path / "one.ft.txt"
    train.write_text("__label__2 the only review\n")
    out = tmp_path / "out"
    with pytest.raises(ReviewflowError, match="no example went to the train split"):
        shard_corpus(ShardSettings(train=train, test=corpus_files[1], out=out, val_fraction=0.99, seed=0))
    assert not (out / "manifest.json").exists()
    with pytest.raises(ReviewflowError, match="--val-fraction 0.99 and --test-fraction 0.5 held out all of them"):
        shard_corpus(ShardSettings(train=train, test=None, test_fraction=0.5, out=out, val_fraction=0.99, seed=0))
    assert not (out / "manifest.json").exists()


def test_the_same_file_as_train_and_test_is_refused(tmp_path, corpus_files):
    train = corpus_files[0]
    with pytest.raises(SourceError, match="same file"):
        shard_corpus(ShardSettings(train=train, test=train, out=tmp_path / "a"))
    copy = tmp_path / "copy.ft.txt.bz2"  # another path, the same bytes
    copy.write_bytes(train.read_bytes())
    with pytest.raises(SourceError, match="same sha256"):
        shard_corpus(ShardSettings(train=train, test=copy, out=tmp_path / "b"))
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_each_source_counts_only_its_own_lines(tmp_path):
    train, test = tmp_path / "train.ft.txt", tmp_path / "test.ft.txt"
    train.write_text("__label__1 bad one\nno label here\n__label__2 good one\n__label__9 odd\n")
    test.write_text("__label__1 a test review\nnot a review\n")
    manifest = shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "out", val_fraction=0.0))
    by_name = {Path(source.path).name: source for source in manifest.sources}
    assert by_name["train.ft.txt"].rejected == {"bad_label": 1, "no_label": 1}
    assert by_name["test.ft.txt"].rejected == {"no_label": 1}
    for source in manifest.sources:
        assert source.lines_read == source.written + sum(source.rejected.values())


def test_a_corpus_of_one_file_is_split_three_ways_by_test_fraction(tmp_path, corpus_files):
    """`shard --test-fraction` (no --test): the one file feeds train, validation and test by the same keyed hash,
    every line written once or rejected; `verify` and `stats`, in a new process, read the directory."""
    train = corpus_files[0]
    refused = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--out", str(tmp_path / "none")])
    assert refused.exit_code == 1 and "--test-fraction" in refused.output and not (tmp_path / "none").exists()
    out = tmp_path / "one-file"
    done = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test-fraction", "0.25", "--out", str(out),
                                        "--vocab-size", "2000"])
    assert done.exit_code == 0, done.output
    manifest = read_manifest(out)
    (source,) = manifest.sources
    assert source.splits == ["train", "validation", "test"] and source.lines_read == len(source_lines(train))
    assert source.lines_read == source.written + sum(source.rejected.values())
    assert source.written == sum(split.num_examples for split in manifest.splits.values())
    splits = {name: read_split(out, name) for name in ("train", "validation", "test")}
    expected = sorted((int(parsed[0]) - 1, parsed[1]) for parsed in map(parse_line, source_lines(train))
                      if isinstance(parsed, tuple) and parsed[0] in ("1", "2"))
    assert sorted(example for examples in splits.values() for example in examples) == expected
    # Each example's split is its hash's: a repeated review lands whole in one split, never in train and test.
    assert all(hash_share(label, text, 0) < 0.25 for label, text in splits["test"])
    assert not any(hash_share(label, text, 0) < 0.25 for label, text in splits["train"] + splits["validation"])
    assert 0.2 < len(splits["test"]) / source.written < 0.3
    # The vocabulary counts the train split only, as with a test file of its own.
    assert manifest.vocabulary.tokens_seen == sum(len(text.split()) for _, text in splits["train"])
    verified, stats = cli_in_a_new_process(["verify", out], ["stats", out])
    assert "test-00000-of-00001.tfrecord" in verified.stdout and "all 5 files match" in verified.stdout
    assert f"test: {len(splits['test']):,} reviews" in stats.stdout, stats.stdout


def write_class_folders(root, corpus_file):
    """A fastText corpus as aclImdb lays one out: neg/ and pos/ with a review per file, an unlabelled unsup/,
    and a file beside the class folders."""
    for number, parsed in enumerate(map(parse_line, source_lines(corpus_file))):
        if isinstance(parsed, tuple) and parsed[0] in ("1", "2"):
            folder = root / ("neg" if parsed[0] == "1" else "pos")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{number}_7.txt").write_bytes(parsed[1])
    (root / "unsup").mkdir()
    for number in range(12):
        (root / "unsup" / f"{number}_0.txt").write_text(f"a review nobody labelled {number}")
    (root / "urls_pos.txt").write_text("http://www.imdb.com/title/tt0453418/usercomments\n")


def test_a_corpus_of_class_folders_is_sharded_and_read_back_in_a_new_process(tmp_path, corpus_files):
    """`shard --train aclImdb/train --test aclImdb/test --classes neg,pos`: every file written once or rejected
    (unsup/'s as bad_label, a file beside the folders as no_label), the source's size and hash those of its files;
    `verify` and `stats` read the directory in a new process."""
    train, test = tmp_path / "aclImdb" / "train", tmp_path / "aclImdb" / "test"
    write_class_folders(train, corpus_files[0])
    write_class_folders(test, corpus_files[1])
    out = tmp_path / "data"
    done = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(out),
                                        "--classes", "neg,pos"])
    assert done.exit_code == 0, done.output
    expected = sorted(({"1": "neg", "2": "pos"}[p[0]], p[1]) for p in map(parse_line, source_lines(corpus_files[0]))
                      if isinstance(p, tuple) and p[0] in ("1", "2"))
    assert (f"train: {len(expected) + 13:,} files read, {len(expected):,} written, rejected: bad_label 12, "
            "no_label 1") in done.output
    manifest = read_manifest(out)
    for source, root in zip(manifest.sources, (train, test)):
        files = [path for path in root.rglob("*") if path.is_file()]
        assert source.format == "folders" and source.fields == ["file", "folder"]
        assert source.lines_read == len(files) == source.written + sum(source.rejected.values())
        assert source.bytes == sum(path.stat().st_size for path in files)
    classes = manifest.class_info()
    got = sorted((classes.names[classes.record_to_class[record_id]], text)
                 for record_id, text in read_split(out, "train") + read_split(out, "validation"))
    assert got == expected and classes.names == ["neg", "pos"]
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert {(r["reason"], r["raw"]) for r in rejects if r["source"] == str(train)} == {
        ("no_label", "urls_pos.txt"), *(("bad_label", f"unsup/{n}_0.txt") for n in range(12))}
    verified, stats, raw_stats = cli_in_a_new_process(["verify", out], ["stats", out], ["stats", train])
    assert "all 5 files match" in verified.stdout
    assert f"train: {manifest.splits['train'].num_examples:,} reviews" in stats.stdout
    assert f"train: {len(expected) + 12:,} reviews" in raw_stats.stdout   # stats keeps unsup/ (no --classes)
    # The source's hash is its files': one changed review is another source.
    before = manifest.sources[0].sha256
    next(train.glob("pos/*.txt")).write_text("a changed review")
    again = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(out),
                                         "--classes", "neg,pos", "--overwrite"])
    assert again.exit_code == 0 and read_manifest(out).sources[0].sha256 != before
    same = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test", str(train), "--out",
                                        str(tmp_path / "same")])
    assert same.exit_code == 1 and "are the same file" in same.output
