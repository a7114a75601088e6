"""The shard plan: pure functions of frozen settings (shards per split, the split of a line, the checks)."""

import bz2

import pytest

from pipeline.errors import ReviewflowError
from pipeline.shard import plan
from pipeline.shard.plan import ShardSettings


def settings(tmp_path, **overrides) -> ShardSettings:
    train, test = tmp_path / "train.ft.txt", tmp_path / "test.ft.txt"
    for path in (train, test):
        if not path.exists():
            path.write_text("__label__2 fine\n")
    return ShardSettings(**{"train": train, "test": test, "out": tmp_path / "data", **overrides})


def test_shards_per_split_follow_the_size_or_the_option(tmp_path):
    assert plan.plan_num_shards(0) == 1 and plan.plan_num_shards(300 << 20) == 3
    assert plan.plan_num_shards(1 << 50) == plan.MAX_SHARDS
    assert plan.plan_split_shards(settings(tmp_path, num_shards=5)) == {split: 5 for split in plan.SPLITS}
    big = tmp_path / "big.ft.txt.bz2"
    big.write_bytes(bz2.compress(b"x") + b"\0" * (200 << 20))  # 200 MiB on disk: ~700 MiB of text
    planned = plan.plan_split_shards(ShardSettings(train=big, test=tmp_path / "test.ft.txt", out=tmp_path / "o"))
    assert planned["train"] > planned["validation"] >= 1 and planned["test"] == 1


def test_the_split_of_a_line_is_a_keyed_hash_of_its_label_and_text(tmp_path):
    chosen = settings(tmp_path, val_fraction=0.25, seed=3)
    texts = [b"review %d" % index for index in range(4000)]
    splits = [plan.split_of("train", "2", text, chosen) for text in texts]
    assert splits == [plan.split_of("train", "2", text, chosen) for text in texts]   # the same every time
    assert 0.22 < splits.count("validation") / len(texts) < 0.28
    assert {plan.split_of("test", "2", text, chosen) for text in texts[:50]} == {"test"}
    reseeded = [plan.split_of("train", "2", text, settings(tmp_path, val_fraction=0.25, seed=4)) for text in texts]
    assert reseeded != splits


def test_a_test_fraction_takes_the_lowest_shares_and_validation_keeps_its_share_of_the_rest(tmp_path):
    shares = [index / 10_000 for index in range(10_000)]
    # No test share: the split a training file with a test file of its own always had.
    assert [plan.split_by_share(share, 0.2, 0.0) for share in shares] == [
        "validation" if share < 0.2 else "train" for share in shares]
    splits = [plan.split_by_share(share, 0.2, 0.25) for share in shares]
    assert splits[:2500] == ["test"] * 2500 and splits[2500:4000] == ["validation"] * 1500
    assert set(splits[4000:]) == {"train"}
    one_file = ShardSettings(train=settings(tmp_path).train, test=None, test_fraction=0.25, out=tmp_path / "d")
    assert one_file.sources() == {"train": one_file.train}
    assert one_file.source_splits("train") == ["train", "validation", "test"]
    texts = [b"review %d" % index for index in range(4000)]
    by_split = [plan.split_of("train", "2", text, one_file) for text in texts]
    assert 0.22 < by_split.count("test") / len(texts) < 0.28
    assert 0.13 < by_split.count("validation") / len(texts) < 0.17


@pytest.mark.parametrize("overrides, message", [
    (dict(val_fraction=1.0), "--val-fraction"), (dict(vocab_size=2), "--vocab-size"),
    (dict(compression="zip"), "--compression"), (dict(runner="spark"), "--runner"),
    (dict(test_fraction=0.2), "not both"), (dict(test=None), "--test FILE .* or --test-fraction"),
    (dict(test=None, test_fraction=1.0), "--test-fraction must be"),
    (dict(test=None, test_fraction=-0.5), "--test-fraction must be")])
def test_settings_out_of_range_are_refused_by_name(tmp_path, overrides, message):
    with pytest.raises(ReviewflowError, match=message):
        settings(tmp_path, **overrides)


def test_the_same_file_for_train_and_test_is_refused_before_anything_is_read(tmp_path):
    same = tmp_path / "train.ft.txt"
    same.write_text("__label__2 fine\n")
    with pytest.raises(ReviewflowError):
        plan.check_sources(ShardSettings(train=same, test=same, out=tmp_path / "data"))
