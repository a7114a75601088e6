"""Shard helpers: the Example encoder's bytes and its memory."""

import psutil
import tensorflow as tf

from pipeline.shards import ExampleEncoder, plan_num_shards, shard_filename


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


def test_shard_names_and_plan():
    assert shard_filename("train", 3, 12, "gzip") == "train-00003-of-00012.tfrecord.gz"
    assert plan_num_shards(0) == 1 and plan_num_shards(300 << 20) == 3
