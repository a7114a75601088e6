"""Attributions: exact for the bags, complete for integrated gradients, on the review's own characters, and
mostly on the words that carry sentiment; `predict --explain` gives them from a run read in a new process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import cli
from conftest import built_once, easy_data
from models import calibration, explain
from models.evaluation import predict
from models.run_dir import RunDir
from pipeline import synthetic, text

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("linear", "ngram_bag", "lstm")  # the two exact decompositions, and a sequence model's integrated gradients
REVIEWS = ["Great product: excellent, I love it!", "Awful... it broke; a waste of money, a waste of time",
           "the the the", "", "Café crème, naïve über-great"]


def fit_models(root: Path) -> None:
    data = easy_data(root, 1500, 20, test_lines=100)
    for name in MODELS:
        result = CliRunner().invoke(cli.cli, ["fit", "--model", name, "--data", str(data), "--out", str(root / name),
                                              "--epochs", "3", "--seed", "1", "--quiet", "--batch-size", "32",
                                              "--learning-rate", "3e-3"])
        assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = built_once(tmp_path_factory, "explain", fit_models)
    return {name: root / name for name in MODELS}, root / "data"


def probability_logit(run_dir: Path, review: str) -> float:
    """The log-odds of P(positive) as the saved end-to-end model gives it."""
    score = RunDir(run_dir).load_model().predict_on_batch(tf.constant([review]))
    return float(calibration.logits_of(np.asarray(score).reshape(-1))[0])


@pytest.mark.parametrize("name", ["linear", "ngram_bag"])
def test_the_bags_parts_sum_exactly_to_their_logit(runs, name):
    explainer = explain.Explainer.for_run(runs[0][name])
    for review in REVIEWS:
        explanation = explainer.explain(review, class_name="2")  # the positive class's log-odds
        assert explanation.method == "exact"
        total = sum(word.weight for word in explanation.words) + explanation.reference
        assert total == pytest.approx(explanation.logit, abs=1e-4)
        if abs(total) < 8:  # float32 holds P within ~6e-8 of 1: beyond 8, the logit read back from P is off by >1e-3
            assert total == pytest.approx(probability_logit(runs[0][name], review), abs=1e-3)
        negative = explainer.explain(review, class_name="__label__1")  # a label as predict prints it
        assert negative.logit == pytest.approx(-explanation.logit, abs=1e-5)
        assert [word.weight for word in negative.words] == pytest.approx([-w.weight for w in explanation.words])


def test_integrated_gradients_are_complete_and_closer_with_more_steps(runs):
    run = RunDir(runs[0]["lstm"])
    model, config = run.load_model(), run.config()
    errors = []
    for steps in (4, 64):
        explainer = explain.Explainer(model, config, steps=steps, steps_per_batch=16)  # 4 batches of 16: bounded
        explanation = explainer.explain(REVIEWS[1])
        assert explanation.method == "integrated_gradients" and explanation.steps == steps
        if abs(explanation.logit) < 12:  # the predicted class's log-odds: negative, for this review
            sign = 1 if explanation.label == "__label__2" else -1
            assert explanation.logit == pytest.approx(sign * probability_logit(runs[0]["lstm"], REVIEWS[1]),
                                                      abs=1e-3)
        total = sum(word.weight for word in explanation.words)
        assert explanation.completeness_error == pytest.approx(
            abs(total - (explanation.logit - explanation.reference)), abs=1e-5)
        errors.append(explanation.completeness_error)
    assert errors[1] <= 0.05 * max(1.0, abs(explanation.logit - explanation.reference))
    assert errors[1] <= errors[0] + 1e-6


@pytest.mark.parametrize("name", MODELS)
def test_the_top_words_are_the_sentiment_words_and_filler_weighs_little(runs, name):
    run_dir, data = runs
    explainer = explain.Explainer.for_run(run_dir[name])
    negative, positive = (set(words.tolist()) for words in synthetic.make_language().sentiment)
    sentiment = negative | positive
    reviews = [line.split(" ", 1)[1] for line in (data.parent / "test.ft.txt").read_text().splitlines()[:80]]
    top_is_sentiment, filler_ratios = [], []
    for review in reviews:
        words = explainer.explain(review).words
        felt = [abs(word.weight) for word in words if word.text.lower() in sentiment]
        if not felt:
            continue
        top_is_sentiment.append(max(words, key=lambda word: word.weight).text.lower() in sentiment)
        filler = [abs(word.weight) for word in words if word.text.lower() == "the"]
        if filler and np.mean(felt) > 0:
            filler_ratios.append(np.mean(filler) / np.mean(felt))
    assert len(top_is_sentiment) >= 40 and len(filler_ratios) >= 20
    assert np.mean(top_is_sentiment) >= 0.6  # most reviews' strongest word carries sentiment
    # "the" weighs far less than the sentiment words of its review (a bag's bigram "the great" gives it half).
    assert np.median(filler_ratios) < 0.5


def test_each_word_is_found_at_its_characters(runs):
    explainer = explain.Explainer.for_run(runs[0]["linear"])
    for review in REVIEWS:
        words = explainer.explain(review).words
        assert len(words) == len(text.tokenize(tf.constant([review]))[0])
        for word in words:
            assert review[word.start:word.end] == word.text and word.text.strip()
    # NFKC makes letters of a symbol (™ -> tm), joining the word: the words are still given, without places.
    assert text.token_spans("Brand™ works") == (["brandtm", "works"], None)
    glued = explainer.explain("Brand™ works").words
    assert [word.text for word in glued] == ["brandtm", "works"] and glued[0].start is None


def test_a_long_review_is_explained_on_the_tokens_the_model_kept(runs):
    explainer = explain.Explainer.for_run(runs[0]["lstm"])
    max_len = explainer.config.settings["max_len"]
    review = " ".join(f"w{index}" for index in range(max_len + 30))
    words = explainer.explain(review).words
    kept = text.kept_positions(max_len + 30, max_len, explainer.config.settings["truncate"])
    assert [word.text for word in words] == [f"w{index}" for index in kept]


def test_predict_explain_in_a_new_process(runs, tmp_path):
    run_dir = runs[0]["lstm"]
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("\n".join(REVIEWS[:2]) + "\n")
    done = subprocess.run([sys.executable, "cli.py", "predict", str(run_dir), "--file", str(reviews), "--explain",
                           "--format", "jsonl"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    plain = [round(prediction.p_positive, 6) for prediction in predict(run_dir, REVIEWS[:2])]
    assert [line["p_positive"] for line in lines] == plain  # --explain changes no prediction
    for review, line in zip(REVIEWS, lines):
        explanation = line["explanation"]
        assert explanation["label"] == line["label"] and explanation["steps"] == explain.DEFAULT_STEPS
        assert explanation["completeness_error"] < 0.1
        assert [token["text"] for token in explanation["tokens"]] == [
            review[token["start"]:token["end"]] for token in explanation["tokens"]]
    assert lines[0]["label"] == "__label__2" and lines[1]["label"] == "__label__1"
    tsv = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--explain", "--steps", "8", REVIEWS[0]])
    label, score, pushed, pulled = tsv.stdout.rstrip("\n").split("\t")
    assert label == "__label__2" and pushed.startswith("for: ") and pulled.startswith("against: ")
    assert pushed.split()[1].rstrip("+-.0123456789") in {"Great", "excellent", "love"}
    refused = CliRunner().invoke(cli.cli, ["predict", str(run_dir), "--explain", "--explain-class", "9", "good"])
    assert refused.exit_code != 0 and "not one of the run's classes" in refused.output
    for option in (["--explain-class", "2"], ["--steps", "8"]):   # without --explain: refused, not ignored
        alone = CliRunner().invoke(cli.cli, ["predict", str(run_dir), *option, "good"])
        assert alone.exit_code == 2 and f"{option[0]} needs --explain" in alone.output, alone.output


def test_n_classes_explain_the_named_class_exactly(tmp_path):
    from pipeline.shard.job import shard_corpus
    from pipeline.shard.plan import ShardSettings

    train = synthetic.write_corpus(tmp_path / "train.ft.txt", 900, seed=1, num_classes=3, mean_words=20)
    test = synthetic.write_corpus(tmp_path / "test.ft.txt", 60, seed=2, num_classes=3, mean_words=20)
    shard_corpus(ShardSettings(train=train, test=test, out=tmp_path / "data", num_shards=1, vocab_size=1000))
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "linear", "--data", str(tmp_path / "data"), "--out",
                                          str(tmp_path / "run"), "--epochs", "3", "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    explainer = explain.Explainer.for_run(tmp_path / "run")
    review = (tmp_path / "test.ft.txt").read_text().splitlines()[0].split(" ", 1)[1]
    probabilities = np.asarray(explainer.model.predict_on_batch(tf.constant([review])), float)[0]
    explained = {name: explainer.explain(review, class_name=name) for name in ("1", "2", "3")}
    for name, explanation in explained.items():
        assert explanation.label == f"__label__{name}" and explanation.method == "exact"
        assert sum(w.weight for w in explanation.words) + explanation.reference == pytest.approx(explanation.logit,
                                                                                                abs=1e-4)
    # A softmax's logits are known up to a constant: their differences are the log-probabilities'.
    assert explained["3"].logit - explained["1"].logit == pytest.approx(
        np.log(probabilities[2]) - np.log(probabilities[0]), abs=1e-3)
    predicted = explainer.explain(review)
    assert predicted.label == f"__label__{int(probabilities.argmax()) + 1}"
