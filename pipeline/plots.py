"""Every plot of the project, as PNG files written atomically: curves, ROC, confusion, bars, lengths.

Both the data side (`stats`) and the model side (fit, evaluate, compare) draw here.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from pipeline import atomic  # noqa: E402


def save_figure(figure, path: Path) -> None:
    """Save a figure as PNG atomically and free it."""
    temporary = atomic.incomplete_path(path)
    figure.savefig(temporary, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic.commit(temporary, path)


def plot_curves(history: list[dict], path: Path, title: str) -> None:
    epochs = [row["epoch"] for row in history]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, metric in zip(axes, ("accuracy", "loss")):
        axis.plot(epochs, [row.get(metric) for row in history], "o-", label=f"training {metric}")
        axis.plot(epochs, [row.get(f"val_{metric}") for row in history], "s--", label=f"validation {metric}")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_ylabel(metric)
        axis.set_title(f"{title}: {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path)


def plot_roc_curves(curves: dict[str, dict], path: Path, title: str) -> None:
    """ROC curves ({name: {"fpr": [...], "tpr": [...]}}) of one or several runs on one plot."""
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, curve in curves.items():
        axis.plot(curve["fpr"], curve["tpr"], label=name)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title(title)
    axis.legend(loc="lower right", fontsize="small")
    save_figure(figure, path)


def plot_reliability(points: list[dict], path: Path, title: str) -> None:
    """The reliability diagram: observed share of positives (N classes: of correct top labels) against the mean
    predicted probability (of the top label), per bin."""
    top_label = bool(points) and "fraction_correct" in points[0]
    observed = "fraction_correct" if top_label else "fraction_positive"
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    axis.plot([p["mean_predicted"] for p in points], [p[observed] for p in points], "o-", label=title)
    axis.set_xlabel("mean probability of the top label" if top_label else "mean predicted P(positive)")
    axis.set_ylabel("share correct" if top_label else "share of positives")
    axis.set_title(f"{title}: reliability")
    axis.legend(loc="upper left", fontsize="small")
    save_figure(figure, path)


def plot_by_length(buckets: list[dict], path: Path, title: str) -> None:
    """Accuracy per length bucket, with the number of reviews; buckets --max-len cuts are shaded."""
    shown = [b for b in buckets if b["count"]]
    figure, axis = plt.subplots(figsize=(max(5, 0.6 * len(shown)), 4))
    colors = ["tab:blue" if b["cut"] == "none" else "tab:orange" if b["cut"] == "some" else "tab:red" for b in shown]
    bars = axis.bar([b["tokens"] for b in shown], [b["accuracy"] for b in shown], color=colors)
    axis.bar_label(bars, labels=[f"{b['count']:,}" for b in shown], fontsize="small")
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("review length in tokens (orange: partly cut by --max-len, red: all cut)")
    axis.set_ylabel("accuracy")
    axis.set_title(f"{title}: accuracy by length (bars labelled with their reviews)")
    axis.tick_params(axis="x", rotation=45)
    save_figure(figure, path)


def plot_confusion(matrix, path: Path, title: str, class_names: list[str] | None = None) -> None:
    """The confusion matrix, true classes down, predicted across (two classes: negative, positive)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    names = class_names if class_names and len(class_names) > 2 else ["negative", "positive"]
    size = max(4.5, 0.6 * len(names) + 2)
    figure, axis = plt.subplots(figsize=(size + 0.5, size))
    ConfusionMatrixDisplay(matrix, display_labels=names).plot(ax=axis, colorbar=False, values_format="d",
                                                              xticks_rotation=45 if len(names) > 5 else "horizontal")
    axis.set_title(f"{title}: confusion matrix")
    save_figure(figure, path)


def bars_figure(names: list[str], values: list[float], xlabel: str, title: str):
    """One horizontal bar per name, its value written at its end: names of any length and number stay readable
    (side by side, long run names ran into each other: `transformerngram_bag`)."""
    height = 1.0 + 0.45 * max(len(names), 1)
    width = 6.0 + 0.07 * max((len(name) for name in names), default=0)
    figure, axis = plt.subplots(figsize=(width, height))
    positions = list(range(len(names)))[::-1]  # the first name on top, as in the table
    bars = axis.barh(positions, values, color="tab:blue")
    axis.set_yticks(positions, labels=names)
    axis.bar_label(bars, fmt="%.4f", padding=3)
    low = min(values) if values else 0
    axis.set_xlim(max(0, low - 0.05), 1.04)  # room at the right for the last bar's value
    axis.set_xlabel(xlabel)
    axis.set_title(title)
    return figure


def plot_bars(names: list[str], values: list[float], path: Path, xlabel: str, title: str) -> None:
    save_figure(bars_figure(names, values, xlabel, title), path)


def plot_length_histograms(lengths: dict[str, dict[int, int]], marker: int, path: Path) -> None:
    """Review lengths (length -> count) per split, with a dashed line at `marker` (covers 90%)."""
    figure, axis = plt.subplots(figsize=(8, 4))
    for name, counts in lengths.items():
        values = sorted(counts)
        axis.hist(values, weights=[counts[v] for v in values], bins=60, alpha=0.5, label=name)
    axis.axvline(marker, color="k", ls="--", label="covers 90%")
    axis.set_xlabel("review length (tokens)")
    axis.set_ylabel("reviews")
    axis.legend()
    save_figure(figure, path)
