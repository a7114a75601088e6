"""`compare`: runs side by side (their files only: no TensorFlow), as a table, markdown, CSV and a chart."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from models.run_dir import RunDir, kept_epoch
from pipeline import atomic, plots
from pipeline.errors import ReviewflowError

COLUMNS = ["run", "model", "parameters", "epochs", "train_seconds", "examples_per_second", "best_val_accuracy",
           "scored_on", "test_accuracy", "test_f1", "test_macro_f1", "test_roc_auc", "error"]
# The split `evaluate` scores unless told otherwise: the `scored_on` column is shown only where a run differs.
TEST_SPLIT = "test"


def describe_run(run_dir: Path, error: str = "") -> dict:
    """One row of the comparison, from the run's config, history and metrics files (a damaged one is the row's
    error: the other runs are still compared)."""
    run = RunDir(run_dir)
    row = {column: None for column in COLUMNS}
    row.update(run=str(run.path), model=run.name, error=error)
    try:
        fill_row(row, run)
    except ReviewflowError as damaged:
        row["error"] = str(damaged)
    return row


def fill_row(row: dict, run: RunDir) -> None:
    run.refuse_other_kind()  # the data directory given among the runs: named so
    if run.has_config():
        config = run.config()
        row.update(model=config.model, parameters=config.parameters)
    history = run.history()
    if history:
        row.update(epochs=len(history),
                   train_seconds=round(sum(r["train_seconds"] for r in history), 1),
                   examples_per_second=round(sum(r["examples_per_second"] for r in history) / len(history)),
                   best_val_accuracy=kept_epoch(row["model"], history)["val_accuracy"])
    metrics = run.metrics()
    if metrics is not None:
        row.update(test_accuracy=metrics["accuracy"], test_f1=metrics["f1"], test_macro_f1=metrics.get("macro_f1"),
                   test_roc_auc=metrics["roc_auc"], **scored_on(metrics))
    elif not row["error"] and not run.is_complete():
        # A folder that never held a run (a typo, the data directory) is not an interrupted one.
        row["error"] = "incomplete run" if run.has_config() else "not a run (no config.json)"


def scored_on(metrics: dict) -> dict:
    """What the run's last `evaluate` scored: `scored_on`, the split or the file's name (the column), and
    `scored_set`, which reviews those were, not a column: (what tells them apart, how to name them)."""
    if metrics.get("file"):
        return {"scored_on": Path(metrics["file"]).name,
                "scored_set": (("file", str(Path(metrics["file"]).resolve())), f"the file {metrics['file']}")}
    split = metrics.get("split", TEST_SPLIT)   # metrics.json of before `evaluate --split`: the test split
    # The manifest's hash tells data directories apart: one directory given by two paths is one.
    return {"scored_on": split, "scored_set": ((split, metrics.get("data_manifest_sha256")),
                                               f"the {split} split of {metrics.get('data_dir') or 'its data'}")}


def mixed_scoring(rows: list[dict]) -> str | None:
    """A warning where the runs' test columns came from different reviews (another split, another data
    directory, a file), which makes them incomparable; None where they all scored the same reviews."""
    _, named = labelled(rows)
    runs_by_set = {}
    for row in named:
        if row.get("scored_set"):
            key, name = row["scored_set"]
            runs_by_set.setdefault(key, (name, []))[1].append(row["run"])
    if len(runs_by_set) < 2:
        return None
    sets = "; ".join(f"{', '.join(runs)} on {name}" for name, runs in runs_by_set.values())
    return (f"warning: these runs were last evaluated on different reviews ({sets}), so their test_* columns do "
            "not compare. Evaluate each on the same ones (`evaluate RUN --data DIR`, or `--file FILE`) first.")


def not_evaluated(rows: list[dict]) -> str | None:
    """A note naming the complete runs with no test metrics yet (their test_* columns are blank), and how to get
    them; None where every run has them or says why not."""
    _, named = labelled(rows)
    runs = [row["run"] for row in named if row["test_accuracy"] is None and not row["error"]]
    if not runs:
        return None
    return (f"note: not evaluated yet, so no test_* columns: {', '.join(runs)}. Score each with "
            "`evaluate RUN --data DIR` (or `--file FILE`), then compare again.")


def sort_rows(rows: list[dict]) -> list[dict]:
    """Best test accuracy first; runs without one (not evaluated, failed) last."""
    return sorted(rows, key=lambda r: (r["test_accuracy"] is None, -(r["test_accuracy"] or 0.0)))


def cell(value, column: str | None = None) -> str:
    """A table's cell: shares and scores (at most 1) to 4 decimals, seconds and larger numbers to 1."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) <= 1 and column != "train_seconds" else f"{value:,.1f}"
    return str(value)


def labelled(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """The columns a table shows, and its rows with each run named by its directory (its path where two share
    a name). The `run` column is left out where every run is named after its model, as a study's are; two runs
    of one model, say two learning rates, would otherwise be two rows that look alike."""
    names = [Path(row["run"]).name for row in rows]
    labels = [row["run"] if names.count(name) > 1 else name for row, name in zip(rows, names)]
    named = any(label != row["model"] for label, row in zip(labels, rows))
    not_test = any(row["scored_on"] not in (None, TEST_SPLIT) for row in rows)
    columns = [column for column in COLUMNS if (column != "run" or named) and (column != "scored_on" or not_test)]
    return columns, [{**row, "run": label} for row, label in zip(rows, labels)]


def as_text(rows: list[dict]) -> str:
    shown, rows = labelled(rows)
    table = [shown] + [[cell(row[c], c) for c in shown] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


def as_markdown(rows: list[dict]) -> str:
    warning = mixed_scoring(rows)
    shown, rows = labelled(rows)
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(cell(row[c], c).replace("|", "/") for c in shown) + " |" for row in rows]
    return "\n".join(lines + ([f"\n{warning}"] if warning else [])) + "\n"


def plot_accuracies(rows: list[dict], path: Path) -> None:
    """A bar per evaluated run (named as the tables name it): its test accuracy; no chart if none was evaluated."""
    columns, shown = labelled(rows)
    scored = [row for row in shown if row["test_accuracy"] is not None]
    if scored:
        plots.plot_bars([row["run" if "run" in columns else "model"] for row in scored],
                        [row["test_accuracy"] for row in scored], path, "test accuracy", "models compared")


def as_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n", extrasaction="ignore")  # not scored_set
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_comparison(rows: list[dict], out_dir: Path) -> None:
    """comparison.md, comparison.csv and comparison.png (test accuracy per run) in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out_dir / "comparison.md", as_markdown(rows))
    atomic.write_text(out_dir / "comparison.csv", as_csv(rows))
    plot_accuracies(rows, out_dir / "comparison.png")


def compare(run_dirs: list[Path]) -> list[dict]:
    return sort_rows([describe_run(run_dir) for run_dir in run_dirs])
