"""Batches by length (pipeline/batching.py): every review once, in batches of similar lengths padded to a
bounded set of widths, and models whose outputs do not depend on that padding."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from models import zoo
from pipeline import batching, dataset
from pipeline.data_dir import DataDir


def reviews(batches):
    """Each review's ids without padding, with its label: what a batch's width must not change."""
    return collections.Counter((tuple(np.trim_zeros(row, "b")), float(label))
                               for ids, labels in batches for row, label in zip(ids.numpy(), labels.numpy()[:, 0]))


@pytest.mark.parametrize("max_len, expected", [(5, (5,)), (8, (8,)), (40, (8, 12, 16, 24, 32, 40)),
                                               (920, (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512,
                                                      768, 920))])
def test_bucket_widths_are_few_and_end_at_max_len(max_len, expected):
    assert batching.bucket_widths(max_len) == expected


def test_a_compiled_step_meets_one_width_per_octave(data_dir):
    assert batching.bucket_widths(920, batching.COMPILED_WIDTH_STEPS) == (8, 16, 32, 64, 128, 256, 512, 920)
    data = DataDir.open(data_dir)
    batches = list(dataset.make_dataset(data, "train", 16, max_len=40, compiled=True))
    assert reviews(batches) == reviews(dataset.make_dataset(data, "train", 16, max_len=40, by_length=False))
    assert {int(ids.shape[1]) for ids, _ in batches} <= {8, 16, 32, 40}


def test_batches_by_length_hold_every_review_once_padded_to_a_bucket(data_dir):
    data = DataDir.open(data_dir)
    padded = list(dataset.make_dataset(data, "train", 16, max_len=40, by_length=False))
    by_length = dataset.make_dataset(data, "train", 16, max_len=40, shuffle=True, seed=1, shuffle_buffer=100)
    batches = list(by_length)
    assert reviews(batches) == reviews(padded)
    assert len(batches) == len(padded) == by_length.cardinality().numpy()
    widths = [int(ids.shape[1]) for ids, _ in batches]
    for ids, _ in batches:
        longest = int(batching.lengths_of(ids).numpy().max())
        width = int(ids.shape[1])
        assert width in batching.bucket_widths(40) and longest <= width
        assert width == batching.bucket_widths(40)[0] or longest > batching.bucket_widths(40)[
            batching.bucket_widths(40).index(width) - 1]  # the smallest bucket that holds the longest
    assert np.mean(widths) < 40 and len(set(widths)) > 1
    # Sorted within a pool, a batch's reviews are closer in length than a random batch's.
    spread = lambda ids: np.ptp(batching.lengths_of(ids).numpy())
    assert np.mean([spread(ids) for ids, _ in batches]) < np.mean([spread(ids) for ids, _ in padded]) / 2


def test_cached_batches_by_length_are_the_same_reviews_each_epoch(data_dir, tmp_path):
    data = DataDir.open(data_dir)
    plain = reviews(dataset.make_dataset(data, "train", 16, max_len=40, by_length=False))
    cached = dataset.make_dataset(data, "train", 16, max_len=40, shuffle=True, seed=2, shuffle_buffer=100,
                                  cache_path=tmp_path / "cache" / "train")
    first, second = list(cached), list(cached)
    assert reviews(first) == reviews(second) == plain
    assert [ids.shape for ids, _ in first] != [ids.shape for ids, _ in second]  # a new order each epoch
    assert all(ids.shape[1] in batching.bucket_widths(40) for ids, _ in first + second)
    # The cache holds tokens, not padding: smaller than the padded ids alone would be.
    cache_bytes = sum(path.stat().st_size for path in (tmp_path / "cache").glob("train*"))
    assert cache_bytes < 4 * 40 * data.num_examples("train")


def numbered_batches(sizes: list[int]) -> tf.data.Dataset:
    """Batches of these sizes, of ids as a preset's inputs are (a dict; batch i is 3 + i wide), labels
    numbering the reviews; its count of batches known."""
    starts = np.cumsum([0, *sizes[:-1]])
    return tf.data.Dataset.from_generator(lambda: (
        ({"token_ids": np.full((size, 3 + i), start, "int32"), "padding_mask": np.ones((size, 3 + i), bool)},
         np.arange(start, start + size)) for i, (start, size) in enumerate(zip(starts, sizes))),
        output_signature=({"token_ids": tf.TensorSpec((None, None), tf.int32),
                           "padding_mask": tf.TensorSpec((None, None), tf.bool)}, tf.TensorSpec((None,), tf.int64)),
    ).apply(tf.data.experimental.assert_cardinality(len(sizes)))


def test_the_first_batch_splits_evenly_over_the_replicas_and_every_review_stays():
    for sizes, replicas, expected in [([605], 2, [604, 1]), ([7, 5, 3], 2, [6, 1, 5, 3]), ([1024, 9], 3, [1023, 1, 9]),
                                      ([8, 3], 2, [8, 3]), ([1, 4], 2, [1, 4])]:
        cut = list(batching.first_batch_split_evenly(numbered_batches(sizes), replicas).as_numpy_iterator())
        assert [len(labels) for _, labels in cut] == expected
        assert np.concatenate([labels for _, labels in cut]).tolist() == list(range(sum(sizes)))  # each once, in order
        for ids, labels in cut:
            assert ids["token_ids"].shape[0] == ids["padding_mask"].shape[0] == len(labels)


def test_the_first_even_training_batch_comes_first_and_the_count_of_batches_stays_known():
    held = batching.UNEVEN_HELD_BACK
    for sizes, replicas, expected in [([7, 8, 8], 2, [8, 7, 8]), ([8, 7, 8], 2, [8, 7, 8]), ([7, 5], 2, [5, 7]),
                                      ([7], 2, [7]), ([10, 12, 12], 3, [12, 10, 12]),
                                      # two pools' partial batches first: both held back, in their order
                                      ([7, 5, 8, 8], 2, [8, 7, 5, 8]), ([7, 5, 3, 8], 2, [8, 7, 5, 3]),
                                      # more uneven ones than are held back: the first one past them leads
                                      ([3] * held + [5, 8], 2, [5] + [3] * held + [8])]:
        swapped = batching.even_batch_first(numbered_batches(sizes), replicas)
        assert int(swapped.cardinality()) == len(sizes)  # Keras and the schedules count the steps
        for _ in range(2):  # every epoch's iteration alike
            got = list(swapped.as_numpy_iterator())
            assert [len(labels) for _, labels in got] == expected
            assert sorted(np.concatenate([labels for _, labels in got]).tolist()) == list(range(sum(sizes)))
            for ids, labels in got:  # each batch whole: its ids (its first label's number) and its own width
                assert ids["token_ids"].shape == ids["padding_mask"].shape and len(ids["token_ids"]) == len(labels)
                assert (ids["token_ids"] == labels[0]).all()


def test_a_preset_s_inputs_are_cut_by_their_padding_mask():
    token_ids = np.zeros((3, 20), np.int32)
    token_ids[0, :10], token_ids[1, :2], token_ids[2, :3] = 5, 6, 7    # 10, 2 and 3 word pieces
    ids = {"token_ids": tf.constant(token_ids), "padding_mask": tf.constant(token_ids > 0)}
    labels = tf.constant([[1.0], [0.0], [0.0]])
    batches = list(batching.sorted_batches(tf.data.Dataset.from_tensors((ids, labels)), 2, 20, False, None))
    assert [{name: tuple(part.shape) for name, part in parts.items()} for parts, _ in batches] == [
        {"token_ids": (2, 8), "padding_mask": (2, 8)}, {"token_ids": (1, 12), "padding_mask": (1, 12)}]
    assert [labels.numpy().ravel().tolist() for _, labels in batches] == [[0.0, 0.0], [1.0]]  # shortest first


@pytest.mark.parametrize("name", [name for name in zoo.MODELS if name != "pretrained"])
def test_a_review_s_probabilities_do_not_depend_on_its_batch_s_padding(name):
    rng = np.random.default_rng(0)
    ids = np.zeros((6, 40), np.int32)
    for row, length in enumerate([1, 5, 12, 3, 0, 9]):
        ids[row, :length] = rng.integers(2, 200, length)
    model = zoo.build(name, 200, 40)
    if name == "cnn":  # batch norm's moving statistics away from 0 and 1, so that padding would show
        for layer in model.layers:
            if "batch_normalization" in layer.name:
                layer.moving_mean.assign(np.full(layer.moving_mean.shape, 0.3, np.float32))
    at_max_len = np.asarray(model(ids, training=False))
    for width in (12, 17):
        np.testing.assert_allclose(np.asarray(model(ids[:, :width], training=False)), at_max_len, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn", "hybrid", "ngram_bag"])
def test_the_end_to_end_model_cuts_padding_and_gives_the_same_probabilities(name):
    from models.training import end_to_end
    from pipeline import text

    vectorizer = text.vocabulary_vectorizer(["", "[UNK]", "good", "bad", "film", "plot", "dull"], max_len=64)
    model = zoo.build(name, 7, 64)
    texts = tf.constant(["good film", "bad dull plot film good", "", "plot"])
    whole = end_to_end(vectorizer, model)
    np.testing.assert_allclose(whole(texts), model(vectorizer(texts)), atol=1e-6)  # padded to 64, as before
    assert whole.get_layer("trim_padding")(vectorizer(texts)).shape == (4, 5)  # the longest review's 5 tokens


def test_fit_without_length_buckets_records_it_and_its_model_predicts_in_a_new_process(data_dir, tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from click.testing import CliRunner

    import cli

    run = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(data_dir), "--out", str(run),
                                           "--epochs", "1", "--max-len", "24", "--no-length-buckets", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["settings"]["length_buckets"] is False
    predicted = subprocess.run([sys.executable, "cli.py", "predict", str(run), "good film", "bad"],
                               capture_output=True, text=True, cwd=Path(cli.__file__).parent, check=True)
    assert len(predicted.stdout.splitlines()) == 2
