"""`report`: one self-contained HTML page of a study: the data, the comparison, and every run.

Plots are inlined as base64 PNG, so the file opened from disk, with no
network, shows everything. Jinja2 escapes every value: review texts are
untrusted input, and a review holding `<script>` is shown as text.
"""

from __future__ import annotations

import base64
import datetime
import time
from pathlib import Path

import jinja2

from models import comparison, evaluation, run_plan
from models.run_dir import CONFUSION_PNG, CURVES_PNG, LENGTH_PNG, RELIABILITY_PNG, RunDir
from pipeline import atomic, plots
from pipeline.data_dir import DataDir
from pipeline.stats import PERCENTILES, SHARE_LENGTHS, corpus_stats

REPORT_FILE = "report.html"
ROC_ALL_PNG = "roc_all.png"
COMPARISON_PNG = "comparison.png"
RUN_FIGURES = ((CURVES_PNG, "training curves"), (CONFUSION_PNG, "confusion matrix"),
               (RELIABILITY_PNG, "reliability diagram"), (LENGTH_PNG, "accuracy by length"))
DEFAULT_EXPLAINED = 10  # mistakes of each run shaded by attribution: bounds what `report` adds (README: cost)
SETTINGS_SHOWN = ("epochs", "batch_size", "max_len", "truncate", "optimizer", "learning_rate", "hparams", "embeddings",
                  "seed")


def _environment() -> jinja2.Environment:
    # Undefined stays lenient: runs evaluated by older versions lack some metrics, and their rows say so.
    return jinja2.Environment(loader=jinja2.PackageLoader("models", "templates"),
                              autoescape=jinja2.select_autoescape(default=True, default_for_string=True))


def _figure(path: Path, alt: str) -> dict | None:
    """A PNG file as an inline image, or None when the run has no such plot."""
    if not path.is_file():
        return None
    return {"data": base64.b64encode(path.read_bytes()).decode("ascii"), "alt": alt}


def describe_data(data: DataDir) -> dict:
    """The data section: splits, sources and their rejects, vocabulary, and the length table (one streamed pass)."""
    manifest = data.manifest
    stats = corpus_stats(data)
    names = data.classes.display_names()
    return {
        "path": str(data.path),
        "classes": names,
        "splits": [{"name": name, "num_examples": split.num_examples, "shards": len(split.shards),
                    "counts": [split.label_counts.get(str(index), 0) for index in range(len(names))]}
                   for name, split in manifest.splits.items()],
        "sources": [{"path": source.path, "lines_read": source.lines_read, "written": source.written,
                     "rejected": source.rejected} for source in manifest.sources],
        "vocab_size": manifest.vocabulary.size, "coverage": manifest.vocabulary.coverage,
        "percentiles": PERCENTILES, "share_lengths": SHARE_LENGTHS,
        "lengths": [{"name": name, "percentiles": [split.percentile(q) for q in PERCENTILES],
                     "max": max(split.lengths), "shares": [split.share_at_most(n) for n in SHARE_LENGTHS]}
                    for name, split in stats.splits.items() if split.num_examples],
        "max_len_advice": [{"models": ", ".join(names), "max_len": choice.max_len, "reason": choice.reason}
                           for names, choice in run_plan.max_len_advice(stats.training_lengths())],
    }


def describe_run(run: RunDir, errors_shown: int, explained: int = DEFAULT_EXPLAINED) -> dict:
    """One run's section: its settings, figures, metrics, accuracy by length and its worst mistakes, the first
    `explained` of them with their words shaded by attribution."""
    config = run.config() if run.has_config() else None
    metrics = run.metrics()
    settings = {key: config.settings.get(key) for key in SETTINGS_SHOWN} if config else {}
    mistakes = run.errors()
    shown = ([e for e in mistakes if e["kind"] == "false_positive"][:errors_shown]
             + [e for e in mistakes if e["kind"] == "false_negative"][:errors_shown]
             + [e for e in mistakes if e["kind"] == "mistake"][:errors_shown])  # N classes
    shading = explain_mistakes(run, shown, explained) if shown and explained and run.is_complete() else None
    return {"model": config.model if config else run.name, "path": str(run.path), "settings": settings,
            "calibration": config.calibration if config else None, "metrics": metrics,
            "scored_on": evaluation.examples_scored(metrics) if metrics else None,  # a split's, or a file's
            "by_length": (metrics or {}).get("by_length"), "errors": shown, "shading": shading,
            "figures": [figure for name, alt in RUN_FIGURES if (figure := _figure(run / name, f"{run.name}: {alt}"))]}


def explain_mistakes(run: RunDir, shown: list[dict], explained: int) -> dict:
    """Shade the first `explained` mistakes' words by their part in the (wrong) predicted label, in place
    (`error["pieces"]`, or `error["words"]` where the words' places are unknown); what it cost."""
    from models import explain

    started = time.perf_counter()
    explainer = explain.Explainer.for_run(run.path)
    for error in shown[:explained]:
        explanation = explainer.explain(error["text"])
        error["pieces"] = explain.shaded(error["text"], explanation)
        if error["pieces"] is None:
            error["words"] = explanation.summary()
    method = ("exact: weight times feature" if explainer.exact is not None else
              f"integrated gradients, {explainer.steps} steps")
    return {"count": min(explained, len(shown)), "method": method, "seconds": time.perf_counter() - started}


def overview_figures(rows: list[dict], runs: list[RunDir], out_dir: Path) -> list[dict]:
    """The comparison chart and the ROC curves of every evaluated run on one plot."""
    comparison.plot_accuracies(rows, out_dir / COMPARISON_PNG)
    curves = {run.name: metrics["roc_curve"] for run in runs
              if (metrics := run.metrics()) and metrics.get("roc_curve")}
    if curves:
        plots.plot_roc_curves(curves, out_dir / ROC_ALL_PNG, "ROC: every run")
    return [figure for name, alt in ((COMPARISON_PNG, "test accuracy per run"), (ROC_ALL_PNG, "ROC curves"))
            if (figure := _figure(out_dir / name, alt))]


def write_report(run_dirs: list[Path], out_dir: Path, data: DataDir | None = None, errors_shown: int = 20,
                 title: str | None = None, rows: list[dict] | None = None,
                 explained: int = DEFAULT_EXPLAINED) -> Path:
    """Write OUT/report.html (and its two overview charts beside it); returns its path.

    `rows` are the comparison's (a study passes its own, which hold each failure's error).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = [RunDir(path) for path in run_dirs]
    rows = rows if rows is not None else comparison.compare(run_dirs)
    columns, shown_rows = comparison.labelled(rows)
    page = _environment().get_template("report.html").render(
        title=title or out_dir.name, made=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        data=describe_data(data) if data is not None else None,
        columns=columns, rows=shown_rows, cell=comparison.cell, scoring_warning=comparison.mixed_scoring(rows),
        overview_figures=overview_figures(rows, runs, out_dir),
        runs=[describe_run(run, errors_shown, explained) for run in runs])
    path = out_dir / REPORT_FILE
    atomic.write_text(path, page)
    return path
