import collections

import numpy as np
import pytest
import tensorflow as tf

from pipeline import dataset
from pipeline.data_dir import DataDir
from pipeline.errors import DatasetError
from pipeline.manifest import read_manifest
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings


def texts_of(ds):
    return [t for texts, _ in ds for t in texts.numpy().tolist()]


def test_each_example_once_per_epoch(data_dir):
    ds = dataset.make_text_dataset(DataDir.open(data_dir), "train", batch_size=16, shuffle=True, seed=3,
                                   shuffle_buffer=50)
    n = read_manifest(data_dir).splits["train"].num_examples
    first, second = texts_of(ds), texts_of(ds)
    assert len(first) == n and collections.Counter(first) == collections.Counter(second)
    assert first != second  # reshuffled each epoch
    unshuffled = texts_of(dataset.make_text_dataset(DataDir.open(data_dir), "train", batch_size=64))
    assert collections.Counter(first) == collections.Counter(unshuffled)


def test_seed_makes_order_deterministic(data_dir):
    make = lambda: dataset.make_text_dataset(DataDir.open(data_dir), "train", 16, shuffle=True, seed=5,
                                             shuffle_buffer=50)
    assert texts_of(make()) == texts_of(make())


def test_batches_of_token_ids_and_labels(data_dir):
    ds = dataset.make_dataset(DataDir.open(data_dir), "validation", batch_size=32, max_len=40, by_length=False)
    ids, labels = next(iter(ds))
    assert ids.shape == (32, 40) and labels.shape == (32, 1) and labels.dtype == tf.float32
    assert int(tf.reduce_max(ids)) < 2000
    n = read_manifest(data_dir).splits["validation"].num_examples
    assert ds.cardinality().numpy() == -(-n // 32)
    assert sum(int(l.shape[0]) for _, l in ds) == n
    # padding only at the end of each row
    row = ids.numpy()[0]
    nonzero = np.flatnonzero(row)
    assert np.all(row[: nonzero[-1] + 1] != 0) or len(nonzero) == 0


def test_refuses_directory_without_manifest(tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        dataset.make_dataset(DataDir.open(tmp_path), "train", 8)


def test_refuses_damaged_directory(tmp_path, data_dir):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    shard = read_manifest(copy).splits["train"].shards[0].path
    with open(copy / shard, "r+b") as f:
        f.truncate(100)
    with pytest.raises(DatasetError, match="verify"):
        dataset.make_dataset(DataDir.open(copy), "train", 8)


def test_cached_ids_are_the_same_examples_reshuffled_each_epoch(data_dir, tmp_path):
    def rows(ds):  # each review's ids without its padding, which depends on its batch
        return [tuple(np.trim_zeros(row, "b")) for ids, _ in ds for row in ids.numpy()]

    plain = rows(dataset.make_dataset(DataDir.open(data_dir), "train", 32, max_len=24))
    cached = dataset.make_dataset(DataDir.open(data_dir), "train", 32, max_len=24, shuffle=True, seed=2,
                                  shuffle_buffer=100, cache_path=tmp_path / "cache" / "train")
    first, second = rows(cached), rows(cached)
    assert collections.Counter(first) == collections.Counter(plain) == collections.Counter(second)
    assert first != second
    assert list((tmp_path / "cache").glob("train*"))  # the second pass came from the file


def test_a_validation_sample_is_every_kth_review_of_each_shard_the_same_each_pass(data_dir, tmp_path):
    data = DataDir.open(data_dir)
    whole = texts_of(dataset.make_text_dataset(data, "validation", 16))
    each_shard = [texts_of(tf.data.TFRecordDataset(path).batch(64).map(lambda records: (
        tf.io.parse_example(records, dataset.FEATURES)["text"], 0))) for path in data.shard_paths("validation")]
    expected = [text for shard in each_shard for text in shard[::3]]
    sample = dataset.make_text_dataset(data, "validation", 16, every=3)
    assert collections.Counter(texts_of(sample)) == collections.Counter(expected)
    assert len(expected) == dataset.sample_size(data, "validation", 3) < len(whole) / 2
    assert sample.cardinality().numpy() == -(-len(expected) // 16)
    assert all(shard[0] in expected for shard in each_shard)   # every shard is sampled

    def reviews(ds):  # each review's ids without its batch's padding
        return collections.Counter(tuple(np.trim_zeros(row, "b")) for ids, _ in ds for row in ids.numpy())

    cached = dataset.make_dataset(data, "validation", 16, max_len=24, every=3, cache_path=tmp_path / "validation")
    first, second = reviews(cached), reviews(cached)
    assert first == second == reviews(dataset.make_dataset(data, "validation", 16, max_len=24, every=3))
    assert sum(first.values()) == len(expected) and cached.cardinality().numpy() == -(-len(expected) // 16)


def test_unshuffled_batches_are_exactly_the_batch_size_across_shards(data_dir):
    data = DataDir.open(data_dir)
    sizes = [len(texts) for texts, _ in dataset.make_text_dataset(data, "train", 48)]
    assert len(data.shard_paths("train")) > 1 and set(sizes[:-1]) == {48} and sum(sizes) == data.num_examples("train")


def test_blocks_and_the_shuffle_buffer_hold_fewer_reviews_where_reviews_are_long(data_dir, monkeypatch):
    """Blocks of 1,024 documents of 114 kB took `fit` to 3.5 GB: a count of reviews bounds no memory where
    reviews are long. The manifest's bytes a record now bound them too (the bounds scaled down here to this
    corpus's short reviews)."""
    data = DataDir.open(data_dir)
    shards = read_manifest(data_dir).splits["train"].shards
    per_record = dataset.record_bytes(data, "train")
    assert per_record == max(shard.bytes / shard.num_examples for shard in shards) and 100 < per_record < 5000
    assert dataset.block_examples(data, "train", 64) == dataset.BLOCK_EXAMPLES  # short reviews: as before
    monkeypatch.setattr(dataset, "BLOCK_BYTES", int(per_record * 100))
    assert dataset.block_examples(data, "train", 32) == 96      # whole batches, ~100 reviews
    assert dataset.block_examples(data, "train", 256) == 256    # one batch, where a batch alone holds more
    assert dataset.examples_within(data, "train", 10, 1000) == 1  # never none
    # The blocks `make_dataset` parses: ~BLOCK_BYTES of records each, every review once.
    blocks = dataset.make_text_dataset(data, "train", dataset.block_examples(data, "train", 32))
    sizes = [int(tf.size(texts)) for texts, _ in blocks]
    assert max(sizes) == 96 and sum(sizes) == read_manifest(data_dir).splits["train"].num_examples
    ids = dataset.make_dataset(data, "train", 32, max_len=40)
    assert sum(int(labels.shape[0]) for _, labels in ids) == sum(sizes)
    monkeypatch.setattr(dataset, "SHUFFLE_BUFFER_BYTES", int(per_record * 20))  # ~20 reviews: still each once
    shuffled = texts_of(dataset.make_text_dataset(data, "train", 16, shuffle=True, seed=3))
    assert collections.Counter(shuffled) == collections.Counter(texts_of(blocks))


def test_gzipped_shards_are_taken_for_their_records_bytes_not_their_compressed_ones(corpus_files, data_dir, tmp_path):
    train, test = corpus_files
    shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "gz", num_shards=3, vocab_size=2000,
                               compression="gzip"))
    gzipped, plain = (dataset.record_bytes(DataDir.open(path), "train") for path in (tmp_path / "gz", data_dir))
    assert 0.8 < gzipped / plain < 1.5, (gzipped, plain)  # the shards' bytes alone: ~1/3
