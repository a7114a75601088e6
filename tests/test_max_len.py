"""fit without --max-len: the length chosen from the train split's histogram, per kind of model."""

import dataclasses
import json
import shutil

import pytest

from models import max_len, zoo
from models.run_dir import RunDir
from models.training import FitSettings, fit, make_plan
from pipeline.data_dir import DataDir
from conftest import easy_data


def test_choice_covers_the_share_rounds_up_and_keeps_within_its_bounds():
    lengths = {length: 1 for length in range(1, 101)}  # one review of each length 1..100
    assert max_len.covering_length(lengths, 0.9) == 90
    assert max_len.choose(None, 0.9, 512, lengths).max_len == 96          # 90, up to a multiple of 8
    assert max_len.choose(None, 0.99, 64, lengths).max_len == 64          # the cap
    assert max_len.choose(None, 0.9, 512, {3: 10, 5: 2}).max_len == max_len.MIN_MAX_LEN
    given = max_len.choose(50, 0.9, 512, lengths)
    assert (given.max_len, given.source, given.covered) == (50, "option", 0.5)
    fallback = max_len.choose(None, 0.9, 512, None)
    assert (fallback.max_len, fallback.source) == (max_len.FALLBACK_MAX_LEN, "fallback")


def test_bag_models_take_more_of_a_review_than_sequence_models():
    assert zoo.spec("linear").lengths == zoo.spec("ngram_bag").lengths == zoo.spec("ffn").lengths
    assert zoo.spec("linear").lengths.coverage > zoo.spec("lstm").lengths.coverage
    assert zoo.spec("lstm").lengths.cap < zoo.spec("linear").lengths.cap


def make_data(root, mean_words):
    return easy_data(root, 300, mean_words, test_lines=40, num_shards=1, vocab_size=500)


@pytest.fixture(scope="module")
def short_and_long(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("short"), 8), make_data(tmp_path_factory.mktemp("long"), 400)


QUICK = dict(epochs=1, steps_per_epoch=2, validation_steps=1)


def fitted_max_len(data, out, name, **settings) -> dict:
    fit(FitSettings(model=name, data=data, out=out, **QUICK, **settings), verbose=0)
    return RunDir(out).config().max_len


def test_fit_chooses_from_the_data_short_reviews_short_long_ones_long(short_and_long, tmp_path):
    short, long = short_and_long
    train_lengths = DataDir.open(long).split("train").lengths()
    chosen = {}
    for data, name in ((short, "cnn"), (short, "linear"), (long, "cnn"), (long, "linear")):
        plan = make_plan(FitSettings(model=name, data=data, out=tmp_path), DataDir.open(data))
        choice = chosen[(data, name)] = dataclasses.asdict(plan.max_len)
        lengths = DataDir.open(data).split("train").lengths()
        coverage, cap = zoo.spec(name).lengths.coverage, zoo.spec(name).lengths.cap
        assert choice["source"] == "data" and choice["max_len"] % max_len.MULTIPLE == 0
        assert choice["max_len"] <= cap and (choice["covered"] >= coverage or choice["max_len"] == cap)
        assert choice["covered"] == pytest.approx(max_len.share_within(lengths, choice["max_len"]), abs=1e-4)
    # What fit plans is what it records and trains with (one fit: the others would plan the same way).
    assert fitted_max_len(long, tmp_path / "run", "linear") == chosen[(long, "linear")]
    assert RunDir(tmp_path / "run").config().settings["max_len"] == chosen[(long, "linear")]["max_len"]
    lengths = {key: choice["max_len"] for key, choice in chosen.items()}
    assert lengths[(short, "cnn")] <= 32 and lengths[(short, "linear")] <= 32  # a few words: no padding to 128
    assert lengths[(long, "linear")] > lengths[(long, "cnn")] > 128  # whole long reviews for the bag model
    assert max(train_lengths) > lengths[(long, "cnn")]


def test_max_len_given_is_kept_and_an_old_data_directory_falls_back(short_and_long, tmp_path):
    short, _ = short_and_long
    assert fitted_max_len(short, tmp_path / "given", "ffn", max_len=128)["source"] == "option"
    old = tmp_path / "old-data"
    shutil.copytree(short, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for split in manifest["splits"].values():
        del split["length_counts"]  # as shard wrote it before the lengths were kept
    (old / "manifest.json").write_text(json.dumps(manifest))
    chosen = fitted_max_len(old, tmp_path / "old", "ffn")
    assert (chosen["max_len"], chosen["source"]) == (max_len.FALLBACK_MAX_LEN, "fallback")
    assert "older reviewflow" in chosen["reason"]


def test_fit_says_which_length_it_chose_and_why(short_and_long, tmp_path):
    from click.testing import CliRunner

    import cli

    _, long = short_and_long
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(long), "--out", str(tmp_path / "r"),
                                          "--epochs", "1", "--steps-per-epoch", "2", "--validation-steps", "1"])
    assert result.exit_code == 0, result.output
    chosen = RunDir(tmp_path / "r").config().max_len
    assert f"--max-len {chosen['max_len']} (data: covers" in result.output and "head and tail" in result.output
