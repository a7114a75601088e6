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
    return ShardSettings(train=train, test=test, out=tmp_path / "data", **overrides)


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


@pytest.mark.parametrize("overrides, message", [
    (dict(val_fraction=1.0), "--val-fraction"), (dict(vocab_size=2), "--vocab-size"),
    (dict(compression="zip"), "--compression"), (dict(runner="spark"), "--runner")])
def test_settings_out_of_range_are_refused_by_name(tmp_path, overrides, message):
    with pytest.raises(ReviewflowError, match=message):
        settings(tmp_path, **overrides)


def test_the_same_file_for_train_and_test_is_refused_before_anything_is_read(tmp_path):
    same = tmp_path / "train.ft.txt"
    same.write_text("__label__2 fine\n")
    with pytest.raises(ReviewflowError):
        plan.check_sources(ShardSettings(train=same, test=same, out=tmp_path / "data"))
