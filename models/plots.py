"""Training curves as the studies plot them: accuracy and loss, training vs validation, per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

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
        axis.set_ylabel(metric)
        axis.set_title(f"{title}: {metric}")
        axis.grid(alpha=0.3)
        axis.legend()
    save_figure(figure, path)
