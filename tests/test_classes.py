"""N classes end to end: star ratings sharded, fitted, evaluated against scikit-learn, predicted and reported,
each command reading what the last wrote in a new process, as users run them."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as sk_metrics

import cli as main
from models.evaluation import model_scores
from models.run_dir import RunDir
from models.training import FitSettings, build_and_compile, make_plan
from pipeline import synthetic
from pipeline.data_dir import DataDir
from pipeline.dataset import class_ids, make_text_dataset
from pipeline.fasttext_format import parse_line
from pipeline.shard.job import shard_corpus
from pipeline.shard.plan import ShardSettings
from conftest import TOKEN_ID_MODELS, cli_in_a_new_process

SMALL = {"hybrid": dict(filters=8, dense_units=8, lstm_units=8),
         "hybrid_split": dict(filters=8, dense_units=8, lstm_units=8), "transformer": dict(num_layers=1)}


@pytest.fixture(scope="module")
def stars(tmp_path_factory):
    """A 5-star corpus made by `synth --classes 5`, sharded."""
    root = tmp_path_factory.mktemp("stars")
    for name, lines, seed in (("train.ft.txt", 2500, 1), ("test.ft.txt", 500, 2)):
        result = CliRunner().invoke(main.cli, ["synth", str(root / name), "--lines", str(lines), "--seed", str(seed),
                                               "--classes", "5", "--mean-words", "30", "--label-noise", "0"])
        assert result.exit_code == 0, result.output
    shard_corpus(ShardSettings(train=root / "train.ft.txt", test=root / "test.ft.txt", out=root / "data",
                               num_shards=2, vocab_size=2000))
    return root / "data"


def test_synthetic_stars_are_ordered_neighbours_closest(tmp_path):
    lines = list(synthetic.generate_star_lines(3000, seed=3, num_classes=5, mean_words=40, label_noise=0))
    parsed = [parse_line(line.rstrip(b"\n")) for line in lines]
    assert {label for label, _ in parsed} == {"1", "2", "3", "4", "5"}
    negative, positive = (set(words) for words in synthetic.make_language().sentiment)
    share = {}
    for label, text in parsed:
        words = text.decode().lower().replace(".", " ").replace(":", " ").split()
        pos, neg = sum(w in positive for w in words), sum(w in negative for w in words)
        if pos + neg:
            share.setdefault(label, []).append(pos / (pos + neg))
    means = [np.mean(share[str(star)]) for star in range(1, 6)]
    assert all(a < b for a, b in zip(means, means[1:]))  # positivity rises with the stars, evenly
    steps = np.diff(means)
    assert steps.max() < 2 * steps.min()
    noisy = [parse_line(line.rstrip(b"\n"))[0] for line in synthetic.generate_star_lines(200, seed=3, label_noise=1)]
    clean = [label for label, _ in parsed[:200]]
    moved = [abs(int(a) - int(b)) for a, b in zip(noisy, clean)]
    assert max(moved) == 1 and sum(moved) > 150  # noise moves a rating by one star (none below 1 or above 5)


@pytest.mark.parametrize("name", TOKEN_ID_MODELS)
def test_every_model_ends_in_a_softmax_over_the_classes(name):
    settings = FitSettings(model=name, data=".", out=".", hparams=SMALL.get(name, {}))
    model = build_and_compile(make_plan(settings), settings, vocab_size=200, num_classes=5)
    ids = np.random.default_rng(0).integers(1, 200, size=(6, 128)).astype("int32")
    ids[:, 90:] = 0
    probabilities = model.predict(ids, verbose=0)
    assert probabilities.shape == (6, 5)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    loss = model.train_on_batch(ids, np.array([0, 1, 2, 3, 4, 0], "int32"))
    assert np.isfinite(loss if np.isscalar(loss) else loss[0])


@pytest.fixture(scope="module")
def star_run(stars, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "linear"
    result = CliRunner().invoke(main.cli, ["fit", "--model", "linear", "--data", str(stars), "--out", str(run),
                                           "--epochs", "4", "--seed", "1", "--param", "buckets=4096", "--quiet"])
    assert result.exit_code == 0, result.output
    return run


def test_a_star_run_is_evaluated_as_scikit_learn_would_then_predicted_compared_and_reported(stars, star_run,
                                                                                            tmp_path):
    """One test for one run (pytest-xdist spreads tests, and each worker would fit it again)."""
    texts = ["superb wonderful love it", "awful broken waste"]
    csv_file = tmp_path / "new.csv"
    csv_file.write_text('id,review\n1,"superb, wonderful"\n2,awful\n')
    _, tsv, jsonl, from_file, compared, _ = cli_in_a_new_process(  # a new process reads the run
        ["evaluate", star_run, "--data", stars], ["predict", star_run, *texts],
        ["predict", star_run, *texts, "--format", "jsonl"], ["predict", star_run, "--file", csv_file],
        ["compare", star_run], ["report", star_run, "--data", stars, "--out", tmp_path / "report"])
    metrics = json.loads((star_run / "metrics.json").read_text())
    data = DataDir.open(stars)
    model = RunDir(star_run).load_model()
    labels, probabilities = [], []
    for texts, batch_labels in make_text_dataset(data, "test", 128):
        labels.append(class_ids(batch_labels))
        probabilities.append(model_scores(model.predict_on_batch, texts))
    labels, probabilities = np.concatenate(labels), np.concatenate(probabilities)
    predicted = probabilities.argmax(axis=1)
    assert metrics["classes"] == ["1", "2", "3", "4", "5"] and metrics["num_examples"] == 500
    assert metrics["accuracy"] == pytest.approx(sk_metrics.accuracy_score(labels, predicted))
    assert metrics["accuracy"] > 0.3  # well above the 0.2 of chance (TF-IDF+LR in scikit-learn: 0.39 here)
    assert metrics["macro_f1"] == pytest.approx(sk_metrics.f1_score(labels, predicted, average="macro"))
    assert metrics["weighted_f1"] == pytest.approx(sk_metrics.f1_score(labels, predicted, average="weighted"))
    assert metrics["roc_auc"] == pytest.approx(sk_metrics.roc_auc_score(labels, probabilities, multi_class="ovr"),
                                               rel=1e-4)
    assert metrics["log_loss"] == pytest.approx(sk_metrics.log_loss(labels, probabilities), rel=1e-3)
    assert metrics["confusion_matrix"] == sk_metrics.confusion_matrix(labels, predicted).tolist()
    recall = sk_metrics.recall_score(labels, predicted, average=None)
    assert [row["recall"] for row in metrics["per_class"]] == pytest.approx(recall.tolist())
    confusion = np.array(metrics["confusion_matrix"])
    # neighbouring stars are confused more often than distant ones
    assert sum(confusion[i, i + 1] + confusion[i + 1, i] for i in range(4)) > \
        sum(confusion[i, j] for i in range(5) for j in range(5) if abs(i - j) >= 2)
    calibration = metrics["calibration"]
    confidence = probabilities.max(axis=1)
    assert 0 <= calibration["ece"] <= 1 and calibration["top_label"]
    assert sum(point["count"] for point in calibration["reliability"]) == 500
    assert calibration["brier"] == pytest.approx(np.mean(np.sum((probabilities - np.eye(5)[labels]) ** 2, 1)),
                                                 rel=1e-4)
    assert np.isclose(sum(p["count"] * p["mean_predicted"] for p in calibration["reliability"]), confidence.sum())
    errors = [json.loads(line) for line in (star_run / "errors.jsonl").read_text().splitlines()]
    assert errors and all(e["label"] != e["predicted"] for e in errors)
    assert [e["confidence"] for e in errors] == sorted((e["confidence"] for e in errors), reverse=True)
    assert sum(b["count"] for b in metrics["by_length"]) == 500
    assert (star_run / "confusion.png").is_file()

    tsv = tsv.stdout.splitlines()
    assert len(tsv) == 2 and all(line.split("\t")[0].startswith("__label__") for line in tsv)
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    for row in rows:
        assert set(row["probabilities"]) == {f"__label__{star}" for star in range(1, 6)}
        assert sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert row["probability"] == max(row["probabilities"].values())
    assert len(from_file.stdout.splitlines()) == 2
    assert "test_macro_f1" in compared.stdout
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "macro F1" in page and "true \\ predicted" in page and "weighted F1" in page
