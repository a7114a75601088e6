"""The run plan: a pure function of the settings, the spec and the data's facts; recorded and resumed."""

import json
import sys
from pathlib import Path

import pytest

from models import run_plan, zoo
from models.run_dir import RunDir
from models.training import FitSettings, fit, make_plan
from pipeline import dataset
from pipeline.data_dir import DataDir
from conftest import easy_data, kill_after_first_epoch

LENGTHS = {length: 10 for length in range(1, 101)}   # 1000 reviews, 10 of each length 1..100


def plan(model="cnn", facts=run_plan.DataFacts(num_train_examples=100_000, lengths=LENGTHS, vocabulary_size=20_000),
         **settings):
    return make_plan(FitSettings(model=model, data=".", out=".", **settings), facts=facts)


def test_every_choice_comes_with_its_source_and_reason():
    chosen = plan()
    assert (chosen.max_len.max_len, chosen.max_len.source) == (96, "data")   # 90% of 1..100, rounded up to 8s
    assert (chosen.vocab.vocab_size, chosen.vocab.source) == (zoo.EMBEDDING_VOCAB_SIZE, "model")
    assert (chosen.batch.value, chosen.batch.source) == (64, "model")
    assert (chosen.optimizer.value, chosen.learning_rate.value) == ("rmsprop", 1e-3)
    assert chosen.truncate == "head_tail" and chosen.early_stopping
    assert chosen.total_steps == -(-100_000 // 64) * 10 and (chosen.epochs.value, chosen.epochs.source) == (10, "model")
    given = plan(max_len=40, batch_size=16, optimizer="adam", learning_rate=0.01, truncate="head", epochs=2)
    assert [given.max_len.source, given.batch.source, given.optimizer.source, given.learning_rate.source,
            given.epochs.source] == ["option"] * 5
    assert given.total_steps == -(-100_000 // 16) * 2
    assert json.loads(json.dumps(given.to_json()))["batch"] == {"value": 16, "source": "option",
                                                               "reason": "--batch-size"}


def test_validation_scores_larger_batches_within_the_models_inference_cap():
    assert plan("ngram_bag").validation_batch_size == run_plan.VALIDATION_BATCH_REVIEWS == 1024
    assert plan("transformer").validation_batch_size == zoo.spec("transformer").inference_batch_size == 256
    assert plan("cnn", batch_size=4096).validation_batch_size == 4096   # never fewer than a training step
    assert "1024 a batch" in plan("cnn").lines()[-1]


def test_fits_validation_batches_hold_the_plans_validation_batch_size(tmp_path):
    from models import training

    data = DataDir.open(easy_data(tmp_path, 3000, 12))
    settings = FitSettings(model="ngram_bag", data=data.path, out=tmp_path / "run", cache=False)
    chosen = make_plan(settings, data)
    vectorizer = training.make_vectorizer(chosen, settings, data)
    train, validation = training.make_inputs(chosen, settings, data, vectorizer, tmp_path / "cache")
    assert max(len(labels) for _, labels in train) == chosen.global_batch_size < data.num_examples("validation")
    assert [len(labels) for _, labels in validation] == [data.num_examples("validation")]   # < 1024: one batch


def test_a_small_corpus_gets_smaller_batches_and_replicas_multiply_the_global_batch():
    small = plan(facts=run_plan.DataFacts(num_train_examples=640))
    assert (small.batch_size, small.batch.source) == (640 // run_plan.MIN_STEPS_PER_EPOCH, "data")
    two = make_plan(FitSettings(model="linear", data=".", out="."), replicas=2,
                    facts=run_plan.DataFacts(num_train_examples=100_000))
    assert (two.batch_size, two.global_batch_size) == (256, 512) and not two.early_stopping
    # linear's rate decays to 0 over its known steps, and the plan says so; cnn's stays constant
    assert "then decayed linearly to 0 (model)" in two.lines()[1] and "decayed" not in small.lines()[1]
    assert two.decay_steps == (round(0.01 * two.total_steps), two.total_steps) and small.decay_steps is None
    assert two.total_steps == -(-100_000 // 512) * 3 and (two.epochs.value, two.epochs.source) == (3, "model")


def test_a_train_split_of_one_batch_that_does_not_split_evenly_over_the_replicas_becomes_two_batches():
    # Keras's build under a strategy averages the first batch's per-replica parts (pipeline/batching.py).
    def chosen(num_train_examples, replicas, batch_size=64):
        return make_plan(FitSettings(model="ffn", data=".", out=".", batch_size=batch_size), replicas=replicas,
                         facts=run_plan.DataFacts(num_train_examples=num_train_examples))

    lowered = chosen(111, replicas=2)
    assert (lowered.batch_size, lowered.global_batch_size, lowered.batch.source) == (55, 110, "data")
    assert "64 (option: --batch-size), lowered so that 111 training reviews" in " ".join(lowered.lines())
    assert lowered.total_steps == 2 * lowered.epochs.value
    assert chosen(33, replicas=4).global_batch_size == 32
    for num_train_examples, replicas in [(111, 1), (110, 2), (129, 2), (1, 2)]:   # even, several batches, too few
        assert chosen(num_train_examples, replicas).batch_size == 64


def test_the_plan_is_the_specs_and_the_same_for_the_same_inputs():
    for spec in zoo.SPECS:
        settings = FitSettings(model=spec.name, data=".", out=".", preset="." if spec.needs_preset else None)
        facts = run_plan.DataFacts(num_train_examples=10**6, lengths=LENGTHS)
        first, second = make_plan(settings, facts=facts), make_plan(settings, facts=facts)
        assert first == second
        assert (first.batch_size, first.optimizer.value, first.learning_rate.value, first.warmup_share.value,
                first.clipnorm) == (spec.batch_size, spec.optimizer, spec.learning_rate, spec.warmup_share,
                                    spec.clipnorm)


def test_xla_is_planned_where_the_spec_says_the_run_repays_its_compiles():
    spec = zoo.spec("ngram_bag")
    steps_per_epoch = -(-spec.xla_from_steps // 4)   # early stopping (patience 3) trains at least 4 epochs
    enough = run_plan.DataFacts(num_train_examples=steps_per_epoch * spec.batch_size, lengths=LENGTHS)
    few = run_plan.DataFacts(num_train_examples=(steps_per_epoch - 1) * spec.batch_size, lengths=LENGTHS)
    assert (plan("ngram_bag", enough).jit_compile.value, plan("ngram_bag", enough).jit_compile.source) == (True, "data")
    assert (plan("ngram_bag", few).jit_compile.value, plan("ngram_bag", few).jit_compile.source) == (False, "data")
    assert not plan("ngram_bag", enough, epochs=3).jit_compile.value  # fewer steps
    assert not plan("ngram_bag", enough, patience=2).jit_compile.value  # early stopping may end it sooner
    refused = plan("ngram_bag", enough, jit_compile=False).jit_compile
    assert (refused.value, refused.source) == (False, "option")
    assert plan("cnn", jit_compile=True).jit_compile.value
    assert (plan("cnn", enough).jit_compile.value, plan("cnn", enough).jit_compile.source) == (False, "model")
    assert "step compiled by XLA (data:" in " ".join(plan("ngram_bag", enough).lines())
    settings = FitSettings(model="ngram_bag", data=".", out=".")
    assert run_plan.settings_record(settings, make_plan(settings, facts=enough))["jit_compile"] is True


def test_each_epoch_scores_a_bounded_sample_of_a_large_validation_split():
    def validation(num_validation, **settings):
        return plan(facts=run_plan.DataFacts(num_train_examples=100_000, num_validation_examples=num_validation,
                                             lengths=LENGTHS), **settings).validation_every

    limit = run_plan.VALIDATION_SAMPLE_REVIEWS
    assert (validation(limit).value, validation(limit).source) == (1, "data")
    large = validation(720_000)   # the held-out 20% of Amazon's 3.6M reviews
    assert (large.value, large.source) == (15, "data") and "the same ~48000" in large.reason
    assert validation(limit + 1).value == 2
    assert (validation(720_000, validation_sample=0).value, validation(720_000, validation_sample=0).source) == (
        1, "option")
    assert validation(1000, validation_sample=100).value == 10
    facts = run_plan.DataFacts(num_train_examples=100_000, num_validation_examples=720_000)
    settings = FitSettings(model="cnn", data=".", out=".")
    chosen = make_plan(settings, facts=facts)
    assert "validation: every 15th of 720000 reviews" in " ".join(chosen.lines())
    assert run_plan.settings_record(settings, chosen)["validation_sample"] == limit


def test_stats_advice_is_fits_choice():
    for names, choice in run_plan.max_len_advice(LENGTHS):
        for name in names:
            assert plan(name).max_len == choice


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return easy_data(tmp_path_factory.mktemp("plan"), 200, 12, test_lines=20, num_shards=1, vocab_size=300)


QUICK = dict(epochs=2, steps_per_epoch=2, validation_steps=1, seed=0)
ROOT = Path(__file__).resolve().parents[1]
KILLED = dict(epochs=8, steps_per_epoch=2, validation_steps=1, seed=0, patience=100)


def interrupted_run(data, out) -> dict:
    """A `fit` killed after its first epoch (of 8), as a user's is; its config.json."""
    options = [f"--{key.replace('_', '-')}={value}" for key, value in KILLED.items()]
    command = [sys.executable, "cli.py", "fit", "--model", "cnn", "--data", str(data), "--out", str(out),
               "--quiet", *options]
    assert kill_after_first_epoch(command, out, ROOT) and not RunDir(out).is_complete()
    return json.loads((out / "config.json").read_text())


def test_the_epochs_and_calibration_score_the_validation_sample(data, tmp_path):
    fit(FitSettings(model="linear", data=data, out=tmp_path / "run", validation_sample=10, **QUICK), verbose=0)
    config = RunDir(tmp_path / "run").config()
    num_validation = json.loads((data / "manifest.json").read_text())["splits"]["validation"]["num_examples"]
    every = config.plan["validation_every"]["value"]
    assert every == -(-num_validation // 10) > 1 and config.settings["validation_sample"] == 10
    assert config.calibration["num_examples"] == dataset.sample_size(DataDir.open(data), "validation", every)


def test_config_records_the_plan_and_a_new_process_reads_it(data, tmp_path):
    fit(FitSettings(model="linear", data=data, out=tmp_path / "run", **QUICK), verbose=0)
    config = RunDir(tmp_path / "run").config()
    assert config.plan["max_len"]["source"] == "data" and config.plan["batch"]["source"] in ("model", "data")
    assert config.settings["max_len"] == config.plan["max_len"]["max_len"]
    assert config.settings["batch_size"] == config.plan["batch"]["value"]


def test_a_run_from_before_five_options_resumes_with_what_they_meant_then(data, tmp_path):
    out = tmp_path / "old"
    config = interrupted_run(data, out)
    # Written before --truncate, --vocab-size, --warmup-share, --calibrate and --validation-sample: they were
    # head, the whole vocabulary, 0 and the whole validation split; calibration comes after training, so the
    # resumed run is calibrated at its end.
    for key in ("truncate", "vocab_size", "warmup_share", "calibrate", "validation_sample"):
        del config["settings"][key]
    del config["plan"]
    (out / "config.json").write_text(json.dumps(config))
    first = RunDir(out).history()
    fit(FitSettings(model="cnn", data=data, out=out, **KILLED), verbose=0)
    rows = RunDir(out).history()
    assert len(rows) == 8 and rows[:len(first)] == first   # resumed: the finished epochs were not trained again
    resumed = RunDir(out).config()
    assert resumed.settings["truncate"] == "head" and resumed.settings["warmup_share"] == 0.0
    assert resumed.settings["vocab_size"] == json.loads((data / "manifest.json").read_text())["vocabulary"]["size"]
    assert resumed.plan["vocab"]["source"] == "run"
    assert resumed.settings["calibrate"] is True and resumed.calibration["temperature"] > 0
    # Before --validation-sample, every epoch scored the whole validation split.
    assert resumed.settings["validation_sample"] == 0 and resumed.plan["validation_every"]["value"] == 1
    assert resumed.plan["validation_every"]["source"] == "run"


def test_an_option_given_otherwise_than_the_interrupted_runs_is_still_refused(data, tmp_path):
    from pipeline.errors import ReviewflowError

    out = tmp_path / "run"
    interrupted_run(data, out)
    with pytest.raises(ReviewflowError, match=r"other settings \(truncate\)"):
        fit(FitSettings(model="cnn", data=data, out=out, truncate="tail", **KILLED), verbose=0)
