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
