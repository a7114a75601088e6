"""evaluate's extra measurements against scikit-learn and brute force, on the same predictions."""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, f1_score

from models import diagnostics


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 3000)
    scores = np.clip(0.5 + (labels - 0.5) * rng.uniform(0, 0.9, 3000) + rng.normal(0, 0.2, 3000), 0, 1)
    lengths = rng.integers(1, 1200, 3000)
    return labels, scores, lengths


def test_calibration_equals_scikit_learns(predictions):
    labels, scores, _ = predictions
    result = diagnostics.calibration(labels, scores)
    assert result["brier"] == pytest.approx(brier_score_loss(labels, scores))
    fraction_positive, mean_predicted = calibration_curve(labels, scores, n_bins=15, strategy="uniform")
    np.testing.assert_allclose([p["fraction_positive"] for p in result["reliability"]], fraction_positive)
    np.testing.assert_allclose([p["mean_predicted"] for p in result["reliability"]], mean_predicted)
    counts = np.array([p["count"] for p in result["reliability"]])
    ece = np.sum(counts / len(labels) * np.abs(fraction_positive - mean_predicted))
    assert result["ece"] == pytest.approx(ece) and counts.sum() == len(labels)


def test_accuracy_by_length_covers_every_review_and_marks_the_cut(predictions):
    labels, scores, lengths = predictions
    buckets = diagnostics.by_length(labels, scores, lengths, max_len=128)
    assert [b["tokens"] for b in buckets][:2] == ["1-100", "101-150"] and buckets[-1]["tokens"] == "over 950"
    assert sum(b["count"] for b in buckets) == len(labels)
    assert [b["cut"] for b in buckets[:3]] == ["none", "some", "all"]
    inside = (lengths > 100) & (lengths <= 150)
    predicted = (scores >= 0.5).astype(int)
    assert buckets[1]["accuracy"] == pytest.approx((predicted[inside] == labels[inside]).mean())
    assert buckets[1]["f1"] == pytest.approx(f1_score(labels[inside], predicted[inside]))


def test_confident_mistakes_streamed_equal_a_sort_of_everything(predictions):
    labels, scores, lengths = predictions
    texts = [f"review {i}".encode() for i in range(len(labels))]
    mistakes = diagnostics.ConfidentMistakes(limit=5)
    for start in range(0, len(labels), 700):  # batch by batch, as evaluate feeds it
        end = start + 700
        mistakes.add(texts[start:end], labels[start:end], scores[start:end], lengths[start:end])
    records = mistakes.records()
    false_positive = np.flatnonzero((scores >= 0.5) & (labels == 0))
    false_negative = np.flatnonzero((scores < 0.5) & (labels == 1))
    expected = ([f"review {i}" for i in false_positive[np.argsort(-scores[false_positive], kind="stable")][:5]]
                + [f"review {i}" for i in false_negative[np.argsort(scores[false_negative], kind="stable")][:5]])
    assert [r["text"] for r in records] == expected
    assert [r["kind"] for r in records] == ["false_positive"] * 5 + ["false_negative"] * 5


def test_best_f1_threshold_is_the_best_of_all_thresholds(predictions):
    labels, scores, _ = predictions
    threshold = diagnostics.best_f1_threshold(labels, scores)
    best = max(f1_score(labels, scores >= t) for t in np.unique(scores))
    assert f1_score(labels, scores >= threshold) == pytest.approx(best)


def test_roc_points_are_thinned_but_keep_both_ends(predictions):
    labels, scores, _ = predictions
    curve = diagnostics.roc_points(labels, scores)
    assert len(curve["fpr"]) <= diagnostics.ROC_POINTS
    assert (curve["fpr"][0], curve["tpr"][0]) == (0, 0) and (curve["fpr"][-1], curve["tpr"][-1]) == (1, 1)
    assert diagnostics.roc_points(np.ones(5), np.linspace(0, 1, 5)) is None


def test_a_kept_epoch_at_the_majority_share_is_named_and_a_better_later_one_too():
    # The studies' CNN on 1,600 synthetic reviews, as `fit` kept it: the lowest validation loss at epoch 1.
    rows = [{"epoch": 1, "val_accuracy": 0.504, "val_loss": 0.6944}, {"epoch": 2, "val_accuracy": 0.544,
            "val_loss": 0.7832}, {"epoch": 3, "val_accuracy": 0.608, "val_loss": 0.8304}]
    said = diagnostics.learnt_nothing(rows, rows[0], majority_share=0.504, num_train=1625)
    assert said.startswith("warning: the kept epoch (1) is no better than always answering the most common class")
    assert "Epoch 3 scored 0.6080" in said and "1,625 training reviews" in said and "bag model" in said
    # No epoch clearly better: the warning says only what it knows.
    flat = diagnostics.learnt_nothing(rows[:2], rows[0], majority_share=0.53, num_train=1625)
    assert "no better than" in flat and "Epoch" not in flat
    # Above the share by more than the margin: a model that learnt, however little.
    assert diagnostics.learnt_nothing(rows, rows[2], majority_share=0.55, num_train=1625) is None
    assert diagnostics.learnt_nothing(rows, {"epoch": 1}, majority_share=0.5, num_train=10) is None  # no validation
