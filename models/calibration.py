"""Temperature scaling (Guo et al. 2017): one number, fitted on the validation split after training.

A network trained to low cross-entropy is often over-confident: its 0.99 is right less often than 99% of the
time. Dividing every logit by one temperature T > 0, chosen to minimise the validation log loss, fixes most of
that, and it cannot change a prediction: the largest logit stays the largest, and for two classes a logit's
sign (the 0.5 threshold) stays. `fit` appends the fitted `layers.Temperature` to `model.keras`, so `predict`,
`evaluate`, `export/` and `serve` all give the calibrated probabilities.

The logits are read back from the model's probabilities (log-odds, or log-probabilities for N classes, which
a softmax takes to the same place), so no architecture has to expose its last layer.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize

from models import diagnostics

# Temperatures searched: a model 20x too sure of itself, or 20x too shy. Outside that, something else is wrong.
TEMPERATURE_RANGE = (0.05, 20.0)
# One parameter needs few examples; a smaller validation split leaves T at 1 rather than fit noise.
MIN_EXAMPLES = 100
# Enough for a precise T on any corpus; the rest of a large validation split would only cost time.
MAX_EXAMPLES = 100_000
# The float32 probabilities' reach, as layers.Temperature clips them.
EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What temperature scaling chose, and the validation split's calibration before and after."""

    temperature: float
    num_examples: int
    ece_before: float
    ece_after: float
    log_loss_before: float
    log_loss_after: float
    reason: str
    # Two classes: the threshold of best F1 on the same reviews' calibrated probabilities, so that `evaluate`
    # reports a split's metrics at it without scoring the validation split again (None: N classes, or one class).
    f1_threshold: float | None = None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def line(self) -> str:
        return (f"calibration: temperature {self.temperature:.3f} ({self.reason}); validation ECE "
                f"{self.ece_before:.4f} -> {self.ece_after:.4f}, log loss {self.log_loss_before:.4f} -> "
                f"{self.log_loss_after:.4f} on {self.num_examples} reviews")


def logits_of(scores: np.ndarray) -> np.ndarray:
    """P(positive) (n,) -> log-odds (n,); class probabilities (n, N) -> log-probabilities (n, N)."""
    scores = np.clip(np.asarray(scores, np.float64), EPSILON, 1 - EPSILON)
    return np.log(scores) - np.log1p(-scores) if scores.ndim == 1 else np.log(scores)


def scaled(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The probabilities of `logits / temperature`: P(positive) (n,), or (n, N) by a softmax."""
    z = logits / temperature
    if z.ndim == 1:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def log_loss(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of the labels at this temperature."""
    z = logits / temperature
    if z.ndim == 1:
        return float(np.mean(np.logaddexp(0.0, np.where(labels == 1, -z, z))))
    z = z - z.max(axis=1, keepdims=True)
    log_probabilities = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(log_probabilities[np.arange(len(labels)), labels]))


def ece(scores: np.ndarray, labels: np.ndarray) -> float:
    """The report's expected calibration error: of P(positive), or of the top label for N classes."""
    if scores.ndim == 1:
        return diagnostics.calibration(labels, scores)["ece"]
    return diagnostics.top_label_calibration(labels, scores)["ece"]


def fit_temperature(scores: np.ndarray, labels: np.ndarray) -> Calibration:
    """The temperature that minimises the log loss of `labels` under `scores` (the model's validation output)."""
    labels = np.asarray(labels).astype(int)
    logits = logits_of(scores)
    before = log_loss(logits, labels, 1.0)
    if len(labels) < MIN_EXAMPLES:
        return _kept(1.0, logits, labels, before, f"kept at 1: {len(labels)} validation reviews, fewer than "
                                                  f"{MIN_EXAMPLES}")
    low, high = np.log(TEMPERATURE_RANGE)
    found = optimize.minimize_scalar(lambda log_t: log_loss(logits, labels, float(np.exp(log_t))),
                                     bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    temperature = float(np.exp(found.x))
    if not log_loss(logits, labels, temperature) < before:  # already calibrated: no change is the best change
        return _kept(1.0, logits, labels, before, "kept at 1: no temperature lowers the validation log loss")
    return _kept(temperature, logits, labels, before, "fitted on the validation split's log loss")


def _kept(temperature: float, logits: np.ndarray, labels: np.ndarray, before: float, reason: str) -> Calibration:
    calibrated = scaled(logits, temperature)
    two_classes = calibrated.ndim == 1 and len(np.unique(labels)) == 2
    return Calibration(temperature=temperature, num_examples=int(len(labels)),
                       ece_before=ece(scaled(logits, 1.0), labels),
                       ece_after=ece(calibrated, labels), log_loss_before=before,
                       log_loss_after=log_loss(logits, labels, temperature), reason=reason,
                       f1_threshold=diagnostics.best_f1_threshold(labels, calibrated) if two_classes else None)


def validation_scores(model, batches) -> tuple[np.ndarray, np.ndarray]:
    """The token-id model's output on `batches` (a dataset of (inputs, labels)), up to MAX_EXAMPLES:
    (scores, class ids)."""
    from models.evaluation import forward_graph
    from pipeline import dataset

    # Batches padded by length come in many widths (IMDB's linear model: 0.92-1.23 s to score its 5k validation
    # reviews traced width by width, 0.65-0.80 s through one graph).
    forward = forward_graph(model, batches.element_spec[0])
    scores, labels, seen = [], [], 0
    for inputs, batch_labels in batches:
        output = np.asarray(forward(inputs), np.float64)
        scores.append(output.reshape(-1) if output.shape[-1] == 1 else output)
        labels.append(dataset.class_ids(batch_labels))
        seen += len(labels[-1])
        if seen >= MAX_EXAMPLES:
            break
    if not scores:
        return np.zeros(0), np.zeros(0, int)
    return np.concatenate(scores)[:MAX_EXAMPLES], np.concatenate(labels)[:MAX_EXAMPLES]
