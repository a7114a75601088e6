"""What `evaluate` measures beyond the headline metrics: accuracy by length, calibration, the most
confident mistakes, and the F1-best threshold. Small functions on (labels, scores) and streamed batches.
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


def by_length(labels: np.ndarray, scores: np.ndarray, lengths: np.ndarray, max_len: int,
              threshold: float = 0.5) -> list[dict]:
    """Accuracy, F1 and count per length bucket (in tokens); `cut` says whether --max-len truncates it."""
    predicted = (scores >= threshold).astype(int)
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
            "f1": float(sk_metrics.f1_score(labels[inside], predicted[inside], zero_division=0)) if count else None,
        })
        lower = upper
    return buckets


def calibration(labels: np.ndarray, scores: np.ndarray, num_bins: int = CALIBRATION_BINS) -> dict:
    """Brier score, expected calibration error and the reliability diagram's points (equal-width bins)."""
    bins = np.minimum((scores * num_bins).astype(int), num_bins - 1)
    points = []
    ece = 0.0
    for index in range(num_bins):
        inside = bins == index
        if not inside.any():
            continue
        predicted, observed = float(scores[inside].mean()), float(labels[inside].mean())
        points.append({"bin": index, "count": int(inside.sum()), "mean_predicted": predicted,
                       "fraction_positive": observed})
        ece += inside.mean() * abs(predicted - observed)
    return {"brier": float(np.mean((scores - labels) ** 2)), "ece": float(ece), "bins": num_bins,
            "reliability": points}


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
            heap = self._heaps[kind]
            if len(heap) == self.limit and confidence <= heap[0][0]:
                continue
            record = {"kind": kind, "label": int(labels[index]), "p_positive": round(float(scores[index]), 6),
                      "confidence": round(confidence, 6), "length": int(lengths[index]),
                      "text": texts[index].decode("utf-8", errors="replace")}
            item = (confidence, next(self._order), record)
            heapq.heappush(heap, item) if len(heap) < self.limit else heapq.heapreplace(heap, item)

    def records(self) -> list[dict]:
        """False positives then false negatives, most confident first."""
        return [record for kind in ("false_positive", "false_negative")
                for _, _, record in sorted(self._heaps[kind], key=lambda item: (-item[0], item[1]))]
