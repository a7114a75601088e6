"""`evaluate` and `predict`: a trained run's end-to-end model on a data split or on raw reviews."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk_metrics

from models.run_dir import CONFUSION_PNG, METRICS_FILE, ROC_PNG, RunDir
from pipeline import dataset, plots
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.fasttext_format import LABEL_NAMES, LABEL_PREFIX
from pipeline.sources import LineReader, TooLongLine

DEFAULT_EVAL_BATCH = 4096   # large: fills a workstation GPU; a few MB of text on a CPU
DEFAULT_PREDICT_BATCH = 1024
THRESHOLD = 0.5


def check_same_vocabulary(run: RunDir, data: DataDir) -> None:
    """Refuse a data directory whose vocabulary is not the one the model was trained with."""
    trained_on = run.config().vocab_sha256
    if trained_on != data.vocab_sha256:
        raise ReviewflowError(
            f"{data.path} has another vocabulary (vocab.txt sha256 {data.vocab_sha256[:12]}...) than the one "
            f"{run.path} was trained with ({trained_on[:12]}...): its token ids would not mean "
            "the same. Evaluate on the data directory the model was trained on (config.json names it), "
            "or train on this one.")


def score_split(run: RunDir, data: DataDir, split: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, P(positive)) of every example of a split, streamed through the saved model."""
    model = run.load_model()
    labels, scores = [], []
    for texts, batch_labels in dataset.make_text_dataset(data, split, batch_size).prefetch(2):
        scores.append(np.asarray(model.predict_on_batch(texts)).reshape(-1))
        labels.append(batch_labels.numpy().reshape(-1))
    if not labels:
        raise ReviewflowError(f"{data.path}: the {split} split is empty; nothing to evaluate.")
    return np.concatenate(labels).astype(int), np.concatenate(scores).astype(float)


def compute_metrics(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Accuracy, precision, recall, F1, ROC AUC, log loss and the confusion matrix, by scikit-learn."""
    predicted = (scores >= THRESHOLD).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
        "precision": float(sk_metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(sk_metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(sk_metrics.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(sk_metrics.roc_auc_score(labels, scores)) if both_classes else None,
        "log_loss": float(sk_metrics.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion_matrix": sk_metrics.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "num_examples": int(len(labels)),
    }


def evaluate(run_dir: Path, data: DataDir, split: str = "test", batch_size: int = DEFAULT_EVAL_BATCH) -> dict:
    """Score a split, write RUN/metrics.json, roc.png and confusion.png; return the metrics."""
    run = RunDir(run_dir)
    check_same_vocabulary(run, data)
    labels, scores = score_split(run, data, split, batch_size)
    result = {**compute_metrics(labels, scores), "split": split, "data_dir": str(data.path),
              "data_manifest_sha256": data.manifest_sha256}
    title = run.config().model
    if result["roc_auc"] is not None:
        plots.plot_roc(labels, scores, run / ROC_PNG, title)
    plots.plot_confusion(np.array(result["confusion_matrix"]), run / CONFUSION_PNG, title)
    run.write_metrics(result)
    return result


def summary_lines(metrics: dict) -> list[str]:
    """What `evaluate` prints: each metric, then the confusion matrix."""
    lines = [f"{key:>10}: {metrics[key]:.4f}" if metrics[key] is not None else f"{key:>10}: n/a (one class)"
             for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")]
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines.append(f"{'confusion':>10}: tn {tn:,}  fp {fp:,}  fn {fn:,}  tp {tp:,}   ({metrics['num_examples']:,} "
                 f"{metrics['split']} examples)")
    return lines


def strip_label(line: bytes) -> bytes:
    """A fastText line's text without its leading `__label__N` token; other lines unchanged."""
    if line.startswith(LABEL_PREFIX):
        parts = line.split(None, 1)
        return parts[1] if len(parts) == 2 else b""
    return line


def lines_of_file(path: Path) -> Iterator[str]:
    """Each line of a plain, .gz or .bz2 file as text (labels stripped), lazily; none skipped."""
    for line in LineReader(path):
        raw = line.prefix if isinstance(line, TooLongLine) else line  # only the first tokens count anyway
        yield strip_label(raw.rstrip(b"\r")).decode("utf-8", errors="replace")


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str          # "__label__1" or "__label__2", the corpus's own form
    p_positive: float


def predict(run_dir: Path, texts: Iterable[str], batch_size: int = DEFAULT_PREDICT_BATCH) -> Iterator[Prediction]:
    """One prediction per text, in input order, in batches: flat memory for any number of texts."""
    model = RunDir(run_dir).load_model()
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) >= batch_size:
            yield from _predict_batch(model, batch)
            batch = []
    if batch:
        yield from _predict_batch(model, batch)


def _predict_batch(model, texts: list[str]) -> Iterator[Prediction]:
    scores = np.asarray(model.predict_on_batch(tf.constant(texts))).reshape(-1)
    for score in scores.tolist():
        yield Prediction(LABEL_NAMES[int(score >= THRESHOLD)], score)
