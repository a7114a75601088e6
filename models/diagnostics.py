"""What `evaluate` measures beyond the headline metrics: accuracy by length, calibration, the most
confident mistakes, and the F1-best threshold. Small functions on (labels, scores) and streamed batches.
And what `fit` says of the epoch it keeps when it learnt nothing (`learnt_nothing`).
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np
from sklearn import metrics as sk_metrics

from pipeline.stats import SHARE_LENGTHS

CALIBRATION_BINS = 15
DEFAULT_ERRORS = 20
ROC_POINTS = 200          # the ROC curve kept in metrics.json, for plots of several runs together
LENGTH_EDGES = SHARE_LENGTHS  # the `stats` table's lengths: up to 100, 150, ..., 950 tokens, then more
# A kept epoch within this of the most common class's share learnt nothing usable: 2 points is under one standard
# error of a validation accuracy on 600 reviews, so a model just above the share is not flagged by noise alone.
NOTHING_LEARNT_MARGIN = 0.02
# An epoch this far above the kept one shows the model did learn, and lost it to overconfidence.
BETTER_EPOCH_MARGIN = 0.05


def learnt_nothing(rows: list[dict], kept: dict, majority_share: float, num_train: int) -> str | None:
    """A warning where the kept epoch's validation accuracy is no better than always answering the most common
    class (`majority_share` of the validation split); None otherwise. `rows`: every epoch's history row.

    Early stopping keeps the lowest validation loss. A model that memorizes a small corpus grows sure of its
    answers faster than it grows right, so its loss can be lowest at its first, untrained epoch (the studies'
    CNN on 1,625 synthetic reviews: accuracy 0.50 kept, 0.60-0.64 two epochs later at a higher loss).
    """
    accuracy = kept.get("val_accuracy")
    if accuracy is None or accuracy > majority_share + NOTHING_LEARNT_MARGIN:
        return None
    said = (f"warning: the kept epoch ({kept['epoch']}) is no better than always answering the most common class: "
            f"validation accuracy {accuracy:.4f}, that class's share {majority_share:.4f}.")
    best = max(rows, key=lambda row: row.get("val_accuracy", 0.0))
    if best.get("val_accuracy", 0.0) >= accuracy + BETTER_EPOCH_MARGIN:
        said += (f" Epoch {best['epoch']} scored {best['val_accuracy']:.4f}, but its validation loss was higher: "
                 f"the model grew sure of answers it memorized from {num_train:,} training reviews.")
    return (said + " Check that the labels follow the text (`reviewflow stats DATA` shows the balance), try a "
            "bag model (linear and ngram_bag learn from the fewest reviews), or train on more reviews.")


def by_length(labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray, max_len: int,
              threshold: float = 0.5) -> list[dict]:
    """Accuracy, F1 (N classes: macro F1) and count per length bucket (in tokens); `cut` says whether --max-len
    truncates it. `scores`: P(positive) (n,), or class probabilities (n, N)."""
    multiclass = scores.ndim == 2
    predicted = scores.argmax(axis=1) if multiclass else (scores >= threshold).astype(int)
    average = {"average": "macro", "labels": list(range(scores.shape[1]))} if multiclass else {}
    buckets = []
    lower = 0
    for upper in [*LENGTH_EDGES, None]:
        inside = (lengths > lower) & (lengths <= upper) if upper is not None else lengths > lower
        cut = "all" if lower >= max_len else "some" if upper is None or upper > max_len else "none"
        count = int(inside.sum())
        buckets.append({
            "tokens": f"{lower + 1}-{upper}" if upper is not None else f"over {lower}",
            "count": count, "cut": cut,
            "accuracy": float((predicted[inside] == labels[inside]).mean()) if count else None,
            "f1": (float(sk_metrics.f1_score(labels[inside], predicted[inside], zero_division=0, **average))
                   if count else None),
        })
        lower = upper
    return buckets


def reliability(predicted: np.ndarray, observed: np.ndarray, num_bins: int, observed_key: str) -> tuple[list, float]:
    """The reliability diagram's points (equal-width bins of `predicted`) and the expected calibration error."""
    bins = np.minimum((predicted * num_bins).astype(int), num_bins - 1)
    points, ece = [], 0.0
    for index in range(num_bins):
        inside = bins == index
        if not inside.any():
            continue
        mean_predicted, mean_observed = float(predicted[inside].mean()), float(observed[inside].mean())
        points.append({"bin": index, "count": int(inside.sum()), "mean_predicted": mean_predicted,
                       observed_key: mean_observed})
        ece += inside.mean() * abs(mean_predicted - mean_observed)
    return points, float(ece)


def calibration(labels: np.ndarray, scores: np.ndarray, num_bins: int = CALIBRATION_BINS) -> dict:
    """Brier score, expected calibration error and the reliability diagram's points (equal-width bins)."""
    points, ece = reliability(scores, labels, num_bins, "fraction_positive")
    return {"brier": float(np.mean((scores - labels) ** 2)), "ece": ece, "bins": num_bins, "reliability": points}


def top_label_calibration(labels: np.ndarray, probabilities: np.ndarray, num_bins: int = CALIBRATION_BINS) -> dict:
    """N classes: the top label's probability against how often it is right (ECE, reliability points), and the
    multi-class Brier score (mean squared distance to the one-hot label)."""
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    points, ece = reliability(probabilities.max(axis=1), correct, num_bins, "fraction_correct")
    one_hot = np.eye(probabilities.shape[1])[labels]
    return {"brier": float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1))), "ece": ece,
            "bins": num_bins, "reliability": points, "top_label": True}


def best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The decision threshold with the highest F1 on these (validation) predictions."""
    precision, recall, thresholds = sk_metrics.precision_recall_curve(labels, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))]) if len(thresholds) else 0.5


def roc_points(labels: np.ndarray, scores: np.ndarray, num_points: int = ROC_POINTS) -> dict | None:
    """The ROC curve, thinned to at most `num_points` points (None with one class)."""
    if len(np.unique(labels)) < 2:
        return None
    fpr, tpr, _ = sk_metrics.roc_curve(labels, scores)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(num_points, len(fpr))).astype(int))
    return {"fpr": np.round(fpr[keep], 5).tolist(), "tpr": np.round(tpr[keep], 5).tolist()}


class ConfidentMistakes:
    """The N false positives and N false negatives of highest confidence, kept in two bounded heaps.

    Fed batch by batch: memory holds 2N reviews, however long the split.
    """

    def __init__(self, limit: int = DEFAULT_ERRORS, threshold: float = 0.5):
        self.limit, self.threshold = limit, threshold
        self._heaps = {"false_positive": [], "false_negative": []}
        self._order = itertools.count()  # ties keep the first seen; records are never compared

    def add(self, texts: list[bytes], labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray) -> None:
        if not self.limit:
            return
        predicted = scores >= self.threshold
        for index in np.flatnonzero(predicted != labels.astype(bool)):
            kind = "false_positive" if predicted[index] else "false_negative"
            confidence = float(scores[index] if predicted[index] else 1 - scores[index])
            if self._keeps(kind, confidence):
                self._push(kind, confidence, {
                    "kind": kind, "label": int(labels[index]), "p_positive": round(float(scores[index]), 6),
                    "confidence": round(confidence, 6), "length": int(lengths[index]),
                    "text": texts[index].decode("utf-8", errors="replace")})

    def _keeps(self, kind: str, confidence: float) -> bool:
        """Whether a mistake this confident enters its bounded heap (checked before its record is built)."""
        heap = self._heaps[kind]
        return len(heap) < self.limit or confidence > heap[0][0]

    def _push(self, kind: str, confidence: float, record: dict) -> None:
        heap = self._heaps[kind]
        item = (confidence, next(self._order), record)
        heapq.heappush(heap, item) if len(heap) < self.limit else heapq.heapreplace(heap, item)

    def records(self) -> list[dict]:
        """False positives then false negatives, most confident first."""
        return self._sorted(("false_positive", "false_negative"))

    def _sorted(self, kinds) -> list[dict]:
        return [record for kind in kinds
                for _, _, record in sorted(self._heaps[kind], key=lambda item: (-item[0], item[1]))]


class ConfidentClassMistakes(ConfidentMistakes):
    """N classes: the `limit` wrong top labels of highest probability, in one bounded heap."""

    def __init__(self, limit: int, class_names: list[str]):
        super().__init__(limit)
        self.class_names = class_names
        self._heaps = {"mistake": []}

    def add(self, texts: list[bytes], labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray) -> None:
        if not self.limit:
            return
        predicted = scores.argmax(axis=1)
        for index in np.flatnonzero(predicted != labels):
            confidence = float(scores[index, predicted[index]])
            if self._keeps("mistake", confidence):
                self._push("mistake", confidence, {
                    "kind": "mistake", "label": self.class_names[int(labels[index])],
                    "predicted": self.class_names[int(predicted[index])], "confidence": round(confidence, 6),
                    "p_label": round(float(scores[index, labels[index]]), 6), "length": int(lengths[index]),
                    "text": texts[index].decode("utf-8", errors="replace")})

    def records(self) -> list[dict]:
        """The most confident mistakes first."""
        return self._sorted(("mistake",))
