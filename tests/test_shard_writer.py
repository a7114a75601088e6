"""The shard writer: file names, the Example encoder's bytes and its memory, atomic round-robin files."""

import psutil
import tensorflow as tf

from pipeline.shard.writer import ExampleEncoder, SplitWriter, file_sha256, shard_filename


def fresh_example(text: bytes, label: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    })).SerializeToString(deterministic=True)


def test_encoder_bytes_equal_a_fresh_example_across_template_renewals():
    encoder = ExampleEncoder()
    for index in range(ExampleEncoder.TEMPLATE_USES * 2 + 3):
        text = b"review %d caf\xc3\xa9" % index
        record = encoder.encode(text, index % 2)
        if index % 997 == 0 or index >= ExampleEncoder.TEMPLATE_USES - 1:
            assert record == fresh_example(text, index % 2)


def test_encoder_memory_does_not_grow_with_what_it_encoded():
    # A template kept forever held every text in protobuf's arena: 50k x 10 KB grew RSS by ~500 MB.
    encoder = ExampleEncoder()
    text = b"x" * 10_000
    before = psutil.Process().memory_info().rss
    for label in range(50_000):
        encoder.encode(text, label % 2)
    assert psutil.Process().memory_info().rss - before < 150 << 20
    # Nor with long reviews: renewed every 10,000 texts, a template held 10,000 x 1 MiB (shard on a corpus of
    # 1 MiB lines grew by its size, and aborted on std::bad_alloc at 20 GB). Now every 16 MiB of text too.
    text = b"x" * (1 << 20)
    before = psutil.Process().memory_info().rss
    for label in range(1_000):
        encoder.encode(text, label % 2)
    assert psutil.Process().memory_info().rss - before < 150 << 20


def test_shard_names():
    assert shard_filename("train", 3, 12, "gzip") == "train-00003-of-00012.tfrecord.gz"
    assert shard_filename("test", 0, 1, "none") == "test-00000-of-00001.tfrecord"


def test_a_split_is_written_round_robin_and_appears_only_when_finished(tmp_path):
    writer = SplitWriter(tmp_path, "train", 3, "none")
    for index in range(7):
        writer.write(fresh_example(b"review %d" % index, index % 2), index % 2)
    assert not list(tmp_path.glob("*.tfrecord"))   # until finish(), only *.incomplete names exist
    infos = writer.finish()
    assert [info.num_examples for info in infos] == [3, 2, 2] and writer.label_counts == {0: 4, 1: 3}
    read = [tf.train.Example.FromString(record.numpy()).features.feature["text"].bytes_list.value[0]
            for info in infos for record in tf.data.TFRecordDataset(str(tmp_path / info.path))]
    assert sorted(read) == sorted(b"review %d" % index for index in range(7))
    assert all(info.sha256 == file_sha256(tmp_path / info.path) for info in infos)


def test_a_discarded_split_leaves_nothing(tmp_path):
    writer = SplitWriter(tmp_path, "validation", 2, "gzip")
    writer.write(fresh_example(b"x", 1), 1)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_too_many_shards_for_the_open_file_limit_are_refused_before_a_file_is_written(tmp_path):
    """`shard --num-shards 100000` failed with "Too many open files" after writing ~20,000 files, and left them;
    now refused up front with the limit, and a split whose files cannot all be opened leaves none."""
    import resource
    import subprocess
    import sys
    from pathlib import Path

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    corpus, test = tmp_path / "c.ft.txt", tmp_path / "t.ft.txt"
    corpus.write_text("__label__1 awful\n__label__2 great\n" * 50)
    test.write_text("__label__1 bad\n__label__2 fine\n")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "cli.py", "shard", "--train", str(corpus), "--test", str(test),
                           "--out", str(tmp_path / "data"), "--num-shards", "200"], cwd=root, capture_output=True,
                          text=True, preexec_fn=low_limit)
    assert done.returncode == 1 and "600 shard files (every split's) would be open at once" in done.stderr
    assert "may open 512 files" in done.stderr and not (tmp_path / "data").exists()
    script = ("import resource, sys\nfrom pipeline.shard.writer import SplitWriter\n"
              "resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
              f"try:\n    SplitWriter({str(tmp_path / 'out')!r}, 'train', 1000, 'none')\n"
              "except Exception as exc:\n    print(type(exc).__name__)\n")
    (tmp_path / "out").mkdir()
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() and not list((tmp_path / "out").iterdir()), done.stderr
