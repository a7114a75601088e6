"""`evaluate` and `predict`: a trained run's end-to-end model on a data split or on raw reviews."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import tensorflow as tf
from sklearn import metrics as sk_metrics

from models import diagnostics, run_plan, zoo
from models.run_dir import CONFUSION_PNG, LENGTH_PNG, RELIABILITY_PNG, ROC_PNG, RunDir
from pipeline import batching, dataset, formats, live, plots, sources
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError
from pipeline.fasttext_format import strip_label
from pipeline.formats import FormatSettings
from pipeline.formats.folders import FolderReader
from pipeline.rejects import Reject, reasons_text
from pipeline.text import token_lengths

DEFAULT_EVAL_BATCH = 4096   # large: fills a workstation GPU; a few MB of text on a CPU
DEFAULT_PREDICT_BATCH = 1024
# Batches sorted by length together when scoring a split: 4 x 4096 reviews of IMDB's size are ~20 MB of text.
SCORING_POOL_BATCHES = 4
# The most text `predict` and `evaluate --file` hold at once, whatever the file's lines: a pool of reviews closes
# at POOL_CHARS characters, a batch at BATCH_CHARS. Tokenizing a batch takes ~10x its text (a lowered copy, the
# regex's, a string per token): 4096 lines cut at 1 MiB each, one pool, took 14 GB. `evaluate` on shards sizes
# its batches from the manifest's bytes a review instead (1,500 documents of 114 kB, one pool, took 3.2 GB).
POOL_CHARS = 64 << 20
BATCH_CHARS = 16 << 20
THRESHOLD = 0.5


def check_same_classes(run: RunDir, data: DataDir) -> None:
    """Refuse a data directory whose classes (in class-id order) are not the ones the model was trained on.

    Its vocabulary may differ: the model scores the shards' raw texts with its own (model.keras), so a new labeled
    corpus, sharded on its own, is evaluated as the data directory it was trained on is."""
    trained_on, given = run.config().class_names(), data.classes.names
    if given != trained_on:
        order = (f" (the same two with another positive class: shard it with --positive-class {trained_on[-1]})"
                 if sorted(given) == sorted(trained_on) else "")
        raise ReviewflowError(f"{data.path} holds the classes {given}, not the ones {run.path} was trained on "
                              f"({trained_on}){order}: its labels would not mean the model's classes. Evaluate on "
                              "a data directory of the same classes.")


@dataclasses.dataclass(frozen=True)
class SplitScores:
    labels: np.ndarray      # class id per review (with the scores, 12 + 8N bytes a review: the only per-review memory)
    scores: np.ndarray      # two classes: P(positive) (n,); N classes: probabilities (n, N)
    lengths: np.ndarray     # tokens, as training's standardize() splits them (before --max-len cuts)


def forward_graph(model, input_spec):
    """`model`'s forward pass, inputs -> numpy outputs, as one graph for every shape `input_spec` allows (Keras's
    `predict_on_batch` traces each new shape anew: each batch width, a file's or a split's last batch)."""
    forward = tf.function(lambda inputs: model(inputs, training=False), input_signature=[input_spec])
    return lambda inputs: forward(inputs).numpy()


def text_scorer(model):
    """A loaded end-to-end model's forward pass, texts (batch,) -> probabilities, for any batch size."""
    return forward_graph(model, tf.TensorSpec([None], tf.string))


def model_scores(score, texts) -> np.ndarray:
    """P(positive) (batch,) of a two-class model, or the class probabilities (batch, N) of an N-class one.

    `score`: texts -> the model's probabilities (`text_scorer(model)`, or `model.predict_on_batch`)."""
    scores = np.asarray(score(texts)).astype(float)
    if scores.shape[-1] == 1:
        return scores.reshape(-1)
    return scores / scores.sum(axis=1, keepdims=True)  # float32's softmax sums to 1 only within ~1e-7


def score_split(score, data: DataDir, split: str, batch_size: int, mistakes=None, every: int = 1) -> SplitScores:
    """Every review of a split (or every `every`-th) streamed through the end-to-end model, in batches of similar
    lengths (a pool of SCORING_POOL_BATCHES batches sorted at a time; the order of reviews changes no metric);
    the most confident mistakes kept aside."""
    labels, scores, lengths = [], [], []
    batch_size = dataset.examples_within(data, split, BATCH_CHARS, batch_size)  # fewer where reviews are long
    pool = dataset.make_text_dataset(data, split, batch_size * SCORING_POOL_BATCHES, every=every)
    # The lengths are tokenized in tf.data, beside the model scoring the batch before (the other core).
    batches = batching.texts_by_length(pool, batch_size).map(
        lambda texts, labels: (texts, labels, token_lengths(texts)), num_parallel_calls=tf.data.AUTOTUNE)
    for texts, batch_labels, batch_lengths in batches.prefetch(2):
        batch_scores = model_scores(score, texts)
        batch_labels = dataset.class_ids(batch_labels)
        batch_lengths = batch_lengths.numpy()
        if mistakes is not None:
            mistakes.add(texts.numpy().tolist(), batch_labels, batch_scores, batch_lengths)
        labels.append(batch_labels)
        scores.append(batch_scores)
        lengths.append(batch_lengths)
    if not labels:
        raise ReviewflowError(f"{data.path}: the {split} split is empty; nothing to evaluate.")
    return SplitScores(np.concatenate(labels), np.concatenate(scores), np.concatenate(lengths))


def compute_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = THRESHOLD) -> dict:
    """Accuracy, precision, recall, F1 (and macro F1), ROC AUC, log loss and the confusion matrix, by scikit-learn."""
    predicted = (scores >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    return {
        "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
        "precision": float(sk_metrics.precision_score(labels, predicted, zero_division=0)),
        "recall": float(sk_metrics.recall_score(labels, predicted, zero_division=0)),
        "f1": float(sk_metrics.f1_score(labels, predicted, zero_division=0)),
        "macro_f1": float(sk_metrics.f1_score(labels, predicted, labels=[0, 1], average="macro", zero_division=0)),
        "roc_auc": float(sk_metrics.roc_auc_score(labels, scores)) if both_classes else None,
        "log_loss": float(sk_metrics.log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "confusion_matrix": sk_metrics.confusion_matrix(labels, predicted, labels=[0, 1]).tolist(),
        "num_examples": int(len(labels)),
    }


def compute_class_metrics(labels: np.ndarray, probabilities: np.ndarray, names: list[str]) -> dict:
    """N classes: accuracy, macro and weighted F1, per-class precision/recall/F1, the N x N confusion matrix,
    one-vs-rest ROC AUC (macro; None unless every class occurs) and log loss, by scikit-learn.

    `precision`, `recall` and `f1` are the macro averages, so tables that show them compare N-class runs too.
    """
    ids = list(range(len(names)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(labels, predicted, labels=ids,
                                                                                zero_division=0)
    every_class = len(np.unique(labels)) == len(names)
    macro = lambda values: float(np.mean(values))  # noqa: E731 - sklearn's macro average over `ids`
    return {
        "accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
        "precision": macro(precision), "recall": macro(recall), "f1": macro(f1), "macro_f1": macro(f1),
        "weighted_f1": float(sk_metrics.f1_score(labels, predicted, labels=ids, average="weighted",
                                                 zero_division=0)),
        "roc_auc": (float(sk_metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro",
                                                   labels=ids)) if every_class else None),
        "log_loss": float(sk_metrics.log_loss(labels, probabilities, labels=ids)),  # rows sum to 1 (model_scores)
        "confusion_matrix": sk_metrics.confusion_matrix(labels, predicted, labels=ids).tolist(),
        "per_class": [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
                      for name, p, r, f, n in zip(names, precision, recall, f1, support)],
        "classes": names,
        "num_examples": int(len(labels)),
    }


def f1_threshold(score, data: DataDir, split: str, batch_size: int, scored: SplitScores,
                 validation_sample: int | None = None, fitted: dict | None = None) -> dict | None:
    """The threshold of best F1 on the validation split (the sample `fit`'s epochs score of it: at most
    `validation_sample` reviews, every k-th), and this split's metrics at it beside 0.5's.

    `fitted`: the run's calibration record, whose threshold `fit` chose on the calibrated scores of this data
    directory's validation sample; taken where it covers the whole sample, instead of scoring it again.
    """
    if split == "validation" or "validation" not in data.manifest.splits:
        return None
    every = run_plan.validation_choice(validation_sample, data.num_examples("validation")).value
    sample = dataset.sample_size(data, "validation", every)
    if fitted and fitted.get("f1_threshold") is not None and fitted["num_examples"] == sample:
        threshold, reviews = fitted["f1_threshold"], sample
    else:  # not calibrated, calibrated on part of the sample, or by a reviewflow that did not record it
        validation = score_split(score, data, "validation", batch_size, every=every)
        threshold = diagnostics.best_f1_threshold(validation.labels, validation.scores)
        reviews = len(validation.labels)
    at = compute_metrics(scored.labels, scored.scores, threshold)
    return {"value": threshold, "chosen_on": "validation", "validation_reviews": reviews,
            "metrics": {key: at[key] for key in ("accuracy", "precision", "recall", "f1", "confusion_matrix")}}


def inference_batch_size(model: str | None, given: int | None, default: int) -> int:
    """`given`, or `default` within the model's own cap (its spec's `inference_batch_size`): a pretrained
    encoder's activations at 4096 reviews a batch took 15 GB of memory."""
    if given is not None:
        return given
    cap = zoo.spec(model).inference_batch_size if model in zoo.MODELS else None
    return default if cap is None else min(default, cap)


def evaluate(run_dir: Path, data: DataDir, split: str = "test", batch_size: int | None = None,
             errors: int = diagnostics.DEFAULT_ERRORS) -> dict:
    """Score a split; write RUN/metrics.json, errors.jsonl and the plots (ROC, confusion, reliability, length).

    Two classes: the metrics at 0.5 and at the F1-best threshold, ROC; N classes: `compute_class_metrics`
    and top-label calibration.
    """
    run = RunDir(run_dir)
    check_same_classes(run, data)   # a folder that is not a run is refused here, before the lock file
    with run.evaluating():
        return _evaluate(run, data, split, batch_size, errors)


def _evaluate(run: RunDir, data: DataDir, split: str, batch_size: int | None, errors: int) -> dict:
    score, config = text_scorer(run.load_model()), run.config()
    batch_size = inference_batch_size(config.settings.get("model"), batch_size, DEFAULT_EVAL_BATCH)
    mistakes = confident_mistakes(config, errors)
    scored = score_split(score, data, split, batch_size, mistakes)
    threshold = f1_threshold(score, data, split, batch_size, scored, config.settings.get("validation_sample"),
                             fitted_on(config, data)) if len(config.class_names()) == 2 else None
    source = {"split": split, "data_dir": str(data.path), "data_manifest_sha256": data.manifest_sha256}
    return write_evaluation(run, config, scored, mistakes, threshold, source)


def evaluate_file(run_dir: Path, path: Path, settings: FormatSettings = FormatSettings(),
                  batch_size: int | None = None, errors: int = diagnostics.DEFAULT_ERRORS) -> dict:
    """`evaluate` on a labeled file of any corpus format (fastText, CSV, TSV, JSON lines, Parquet), read as
    `shard` reads it, with no shards made: a held-out corpus that came later, say. A record that cannot be read,
    or whose label is none of the run's classes, is counted in the result's `rejected`, never scored. The
    F1-best threshold is the one `fit` chose on its validation reviews (a file has no validation split)."""
    run = RunDir(run_dir)
    config = run.config()  # a folder that is not a run is refused here, before the lock file
    with run.evaluating():
        score = text_scorer(run.load_model())
        batch_size = inference_batch_size(config.settings.get("model"), batch_size, DEFAULT_EVAL_BATCH)
        mistakes = confident_mistakes(config, errors)
        scored, rejected = score_file(score, path, settings, config.class_names(), batch_size, mistakes)
        threshold = recorded_threshold(config, scored) if len(config.class_names()) == 2 else None
        source = {"split": "file", "file": str(path), "rejected": dict(sorted(rejected.items())),
                  "data_dir": None, "data_manifest_sha256": None}
        return write_evaluation(run, config, scored, mistakes, threshold, source)


def confident_mistakes(config, errors: int):
    """The heaps of the most confident mistakes `evaluate` keeps (two classes: by kind; N: any)."""
    names = config.class_names()
    return (diagnostics.ConfidentMistakes(errors) if len(names) == 2 else
            diagnostics.ConfidentClassMistakes(errors, names))


def score_file(score, path: Path, settings: FormatSettings, names: list[str], batch_size: int,
               mistakes) -> tuple[SplitScores, collections.Counter]:
    """A labeled file's reviews scored as `score_split` scores a split (pools sorted by length, then batches),
    and the count of its records rejected by reason."""
    class_of = {name: index for index, name in enumerate(names)}
    rejected = collections.Counter()

    def labeled():
        for record in formats.open_records(path, settings, need_label=True):
            if isinstance(record.parsed, Reject):
                rejected[record.parsed.value] += 1
            elif record.parsed[0] not in class_of:
                rejected[Reject.UNKNOWN_LABEL.value] += 1
            else:
                yield class_of[record.parsed[0]], record.parsed[1]

    labels, scores, lengths = [], [], []
    for pool in _pools(labeled(), batch_size * SCORING_POOL_BATCHES, length=lambda item: len(item[1])):
        pool.sort(key=lambda item: len(item[1]))  # bytes for tokens: a batch's padding ends near its longest
        for part in _batches([len(text) for _, text in pool], batch_size):
            batch = pool[part]
            texts = tf.constant([text for _, text in batch])
            batch_labels = np.array([label for label, _ in batch])
            batch_scores, batch_lengths = model_scores(score, texts), token_lengths(texts).numpy()
            mistakes.add(texts.numpy().tolist(), batch_labels, batch_scores, batch_lengths)
            labels.append(batch_labels)
            scores.append(batch_scores)
            lengths.append(batch_lengths)
    if not labels:
        reasons = reasons_text(dict(sorted(rejected.items()))) or "it is empty"
        raise ReviewflowError(f"{path}: no record to evaluate ({reasons}); its labels must be the run's classes "
                              f"{names}. Check --format and --label-field.")
    return SplitScores(np.concatenate(labels), np.concatenate(scores), np.concatenate(lengths)), rejected


def recorded_threshold(config, scored: SplitScores) -> dict | None:
    """The F1-best threshold `fit` chose on its validation reviews, and `scored`'s metrics at it; None where the
    run recorded none (not calibrated, or written by an older reviewflow)."""
    fitted = config.calibration or {}
    if fitted.get("f1_threshold") is None:
        return None
    at = compute_metrics(scored.labels, scored.scores, fitted["f1_threshold"])
    return {"value": fitted["f1_threshold"], "chosen_on": "validation", "validation_reviews": fitted["num_examples"],
            "metrics": {key: at[key] for key in ("accuracy", "precision", "recall", "f1", "confusion_matrix")}}


def write_evaluation(run: RunDir, config, scored: SplitScores, mistakes, threshold: dict | None,
                     source: dict) -> dict:
    """The metrics of `scored` (where its reviews came from: `source`), written as RUN/metrics.json with
    errors.jsonl and the plots. Two classes: the metrics at 0.5 and at `threshold`, ROC; N classes:
    `compute_class_metrics` and top-label calibration."""
    labels, scores, names = scored.labels, scored.scores, config.class_names()
    max_len = config.settings["max_len"]
    if len(names) == 2:
        measured = {**compute_metrics(labels, scores), "calibration": diagnostics.calibration(labels, scores),
                    "f1_threshold": threshold, "roc_curve": diagnostics.roc_points(labels, scores)}
    else:
        measured = {**compute_class_metrics(labels, scores, names),
                    "calibration": diagnostics.top_label_calibration(labels, scores),
                    "f1_threshold": None, "roc_curve": None}
    temperature = (config.calibration or {}).get("temperature")  # None: not calibrated
    result = {**measured, "temperature": temperature, **source, "max_len": max_len,
              "by_length": diagnostics.by_length(labels, scores, scored.lengths, max_len)}
    write_plots(run, result, config.model)
    run.write_errors(mistakes.records())
    run.write_metrics(result)
    return result


def fitted_on(config, data: DataDir) -> dict | None:
    """The run's calibration record if `fit` made it on this data directory (its validation split), else None."""
    return config.calibration if config.data_manifest_sha256 == data.manifest_sha256 else None


def write_plots(run: RunDir, metrics: dict, title: str) -> None:
    if metrics["roc_curve"] is not None:
        plots.plot_roc_curves({title: metrics["roc_curve"]}, run / ROC_PNG, f"{title}: ROC")
    plots.plot_confusion(np.array(metrics["confusion_matrix"]), run / CONFUSION_PNG, title, metrics.get("classes"))
    plots.plot_reliability(metrics["calibration"]["reliability"], run / RELIABILITY_PNG, title)
    plots.plot_by_length(metrics["by_length"], run / LENGTH_PNG, title)


def class_summary_lines(metrics: dict) -> list[str]:
    """What `evaluate` prints for N classes: headline metrics, each class's, the confusion matrix, calibration."""
    lines = [f"{key:>12}: {metrics[key]:.4f}" if metrics[key] is not None else f"{key:>12}: n/a (a class is absent)"
             for key in ("accuracy", "macro_f1", "weighted_f1", "roc_auc", "log_loss")]
    width = max(len(name) for name in metrics["classes"])
    name_width = max(width, len("class"))
    lines.append(f"{'class':>{name_width}}  {'precision':>9}  {'recall':>9}  {'f1':>9}  {'support':>9}")
    lines += [f"{row['class']:>{name_width}}  {row['precision']:9.4f}  {row['recall']:9.4f}  {row['f1']:9.4f}  "
              f"{row['support']:9,}" for row in metrics["per_class"]]
    lines.append(f"confusion (true down, predicted across; {examples_scored(metrics)}):")
    cells = max(len(f"{count:,}") for row in metrics["confusion_matrix"] for count in row)
    column = max(cells, width)
    lines.append(" " * width + "  " + " ".join(f"{name:>{column}}" for name in metrics["classes"]))
    lines += [f"{name:>{width}}  " + " ".join(f"{count:>{column},}" for count in row)
              for name, row in zip(metrics["classes"], metrics["confusion_matrix"])]
    calibration = metrics["calibration"]
    lines.append(f"{'brier':>12}: {calibration['brier']:.4f}   top-label ECE ({calibration['bins']} bins): "
                 f"{calibration['ece']:.4f}{temperature_note(metrics)}")
    return lines


def examples_scored(metrics: dict) -> str:
    """"20,000 test examples", or "500 examples of test.ft.txt.bz2" for `evaluate --file`."""
    if metrics.get("file"):
        return f"{metrics['num_examples']:,} examples of {Path(metrics['file']).name}"
    return f"{metrics['num_examples']:,} {metrics['split']} examples"


def temperature_note(metrics: dict) -> str:
    temperature = metrics.get("temperature")
    return "   (uncalibrated)" if temperature is None else f"   (calibrated: temperature {temperature:.3f})"


def summary_lines(metrics: dict) -> list[str]:
    """What `evaluate` prints: each metric, the confusion matrix, calibration and the F1-best threshold."""
    if "per_class" in metrics:
        return class_summary_lines(metrics)
    lines = [f"{key:>10}: {metrics[key]:.4f}" if metrics[key] is not None else f"{key:>10}: n/a (one class)"
             for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")]
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]
    lines.append(f"{'confusion':>10}: tn {tn:,}  fp {fp:,}  fn {fn:,}  tp {tp:,}   ({examples_scored(metrics)})")
    calibration = metrics["calibration"]
    lines.append(f"{'brier':>10}: {calibration['brier']:.4f}   ECE ({calibration['bins']} bins): "
                 f"{calibration['ece']:.4f}{temperature_note(metrics)}")
    if metrics["f1_threshold"] is not None:
        chosen = metrics["f1_threshold"]
        reviews = f"{chosen['validation_reviews']:,} " if "validation_reviews" in chosen else ""  # older runs: none
        lines.append(f"{'threshold':>10}: {chosen['value']:.3f} (best F1 on {reviews}validation reviews): accuracy "
                     f"{chosen['metrics']['accuracy']:.4f}, F1 {chosen['metrics']['f1']:.4f} (0.5: accuracy "
                     f"{metrics['accuracy']:.4f}, F1 {metrics['f1']:.4f})")
    return lines


@dataclasses.dataclass
class NotUtf8Lines:
    """The lines of a plain file or stream that were not UTF-8 and were scored with U+FFFD in place of their
    bad bytes: `predict` warns of them, since a binary file or another encoding must not pass silently."""

    count: int = 0
    first_line: int | None = None

    def decode(self, text: bytes, line_number: int, cut: bool) -> str:
        """`text` as a string; bad bytes replaced and counted (not a character cut in two where the line was)."""
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            if cut and exc.reason == "unexpected end of data":  # a character that straddled the 1 MiB cut
                return text[:exc.start].decode("utf-8")
            self.count += 1
            self.first_line = self.first_line or line_number
            return text.decode("utf-8", errors="replace")


def texts_of_file(path: Path, input_format: str | None = None, text_field: str | None = None,
                  not_utf8: NotUtf8Lines | None = None) -> Iterator[str | Reject]:
    """The reviews of a file to score, lazily, read by its format's reader (pipeline/formats) as `shard` reads
    it: a fastText or plain file's lines (labels left out), or a CSV/TSV/JSONL/Parquet file's text field. A
    record that cannot be read (too deep, too long, not UTF-8, ...) is its `Reject` reason, in its place:
    `predict` gives it an output line that says so, and none is skipped. A plain line that is not UTF-8 is
    scored with its bad bytes replaced (U+FFFD) and counted in `not_utf8`."""
    return (text for _, text in named_texts_of_file(path, input_format, text_field, not_utf8))


def named_texts_of_file(path: Path, input_format: str | None = None, text_field: str | None = None,
                        not_utf8: NotUtf8Lines | None = None) -> Iterator[tuple[str, str | Reject]]:
    """`texts_of_file`'s reviews, each with its record's name: a directory's file, as a path in it (from the
    reader's own listing: the name and the review come from one walk), or a file's line or row number."""
    not_utf8 = not_utf8 if not_utf8 is not None else NotUtf8Lines()
    reader = formats.open_records(path, FormatSettings(format=input_format, text_field=text_field),
                                  need_label=False)
    folder = isinstance(reader, FolderReader)
    for record in reader:
        name = record.raw.decode("utf-8", "surrogateescape") if folder else str(record.number)
        if isinstance(record.parsed, tuple):
            cut = isinstance(record.raw, sources.TooLongLine)
            yield name, not_utf8.decode(record.parsed[1], record.number, cut)
        elif record.parsed is Reject.EMPTY_TEXT:
            yield name, ""  # an empty review is scored, as an empty line is; one without the field (or null) is not
        else:
            yield name, record.parsed


def texts_of_stream(stream: BinaryIO, not_utf8: NotUtf8Lines | None = None) -> Iterator[str]:
    """The reviews of a stream of lines (standard input) as each comes, read as `texts_of_file` reads a plain
    file's lines: a fastText label left out, bytes that are not UTF-8 replaced (U+FFFD) and counted, a line
    cut at 1 MiB (the rest dropped unread into memory: one hostile line must not hold the whole of itself)."""
    not_utf8 = not_utf8 if not_utf8 is not None else NotUtf8Lines()
    for line_number, line in enumerate(sources.stream_lines(stream), start=1):
        cut = len(line) >= sources.DEFAULT_MAX_LINE_BYTES
        yield not_utf8.decode(strip_label(line), line_number, cut)


@dataclasses.dataclass(frozen=True)
class Prediction:
    label: str          # the corpus's own form: "__label__2" for fastText corpora, "positive" for a CSV's
    probability: float  # of that label
    p_positive: float | None = None           # two classes: P(positive)
    probabilities: dict[str, float] | None = None  # N classes: every class's, in the model's order
    rejected: str | None = None               # why the record could not be read (label None, probability nan)


def predict(run_dir: Path, texts: Iterable[str | Reject | live.Pause],
            batch_size: int | None = None) -> Iterator[Prediction]:
    """One prediction per text, in input order, in batches: flat memory for any number of texts.

    A `Reject` in `texts` (a record `texts_of_file` could not read) gets a rejected prediction in its place; at
    a `live.PAUSE` (a live stream waiting for its next review), the texts that came are answered at once.
    """
    run = RunDir(run_dir)
    score, config = text_scorer(run.load_model()), run.config()
    batch_size = inference_batch_size(config.settings.get("model"), batch_size, DEFAULT_PREDICT_BATCH)
    labels = [config.label_prefix() + name for name in config.class_names()]
    for pool in _pools(texts, batch_size * SCORING_POOL_BATCHES,
                       length=lambda item: 0 if isinstance(item, Reject) else len(item)):
        yield from _predict_pool(score, pool, labels, batch_size)


def _pools(items: Iterable, size: int, length=len) -> Iterator[list]:
    """`items` (texts to predict, labeled texts to evaluate) in lists of `size`, or of POOL_CHARS of text
    (`length` of an item) if that comes first, a shorter one at each `live.PAUSE` that follows an item, and the
    rest."""
    pool: list = []
    chars = 0
    for item in items:
        if item is not live.PAUSE:
            pool.append(item)
            chars += length(item)
        if pool and (item is live.PAUSE or len(pool) >= size or chars >= POOL_CHARS):
            yield pool
            pool, chars = [], 0
    if pool:
        yield pool


def _batches(lengths: list[int], batch_size: int) -> Iterator[slice]:
    """Consecutive slices over items of these text lengths: `batch_size` items, fewer where they would hold over
    BATCH_CHARS of text (one item alone may)."""
    start = chars = 0
    for index, length in enumerate(lengths):
        if index > start and (index - start >= batch_size or chars + length > BATCH_CHARS):
            yield slice(start, index)
            start, chars = index, 0
        chars += length
    if start < len(lengths):
        yield slice(start, len(lengths))


def _predict_pool(score, items: list[str | Reject], labels: list[str], batch_size: int) -> Iterator[Prediction]:
    texts = [item for item in items if not isinstance(item, Reject)]
    scored = iter(_score_texts(score, texts, labels, batch_size))
    for item in items:
        yield (Prediction(None, float("nan"), rejected=item.value) if isinstance(item, Reject)
               else next(scored))


def _score_texts(score, texts: list[str], labels: list[str], batch_size: int) -> list[Prediction]:
    """The texts' predictions in their order, scored in batches of similar length (as `score_split` scores a
    split): the end-to-end model cuts each batch's padding after its longest review, so one long review no
    longer makes its whole batch pay for its length."""
    by_length = np.argsort([len(text) for text in texts], kind="stable")
    predictions: list[Prediction | None] = [None] * len(texts)
    for batch in _batches([len(texts[index]) for index in by_length], batch_size):
        part = by_length[batch]
        for index, prediction in zip(part, _predictions(score, [texts[i] for i in part], labels)):
            predictions[index] = prediction
    return predictions


def _predictions(score, texts: list[str], labels: list[str]) -> Iterator[Prediction]:
    scores = model_scores(score, tf.constant(texts))
    if scores.ndim == 1:
        for p_positive in scores.tolist():
            positive = p_positive >= THRESHOLD
            yield Prediction(labels[int(positive)], p_positive if positive else 1 - p_positive, p_positive=p_positive)
        return
    for row in scores.tolist():
        top = int(np.argmax(row))
        yield Prediction(labels[top], row[top], probabilities=dict(zip(labels, row)))
