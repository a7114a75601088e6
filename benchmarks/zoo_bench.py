"""Every zoo model beside TF-IDF + logistic regression and the majority class, on three synthetic corpora.

simple: sentiment in single words; hard: negation and contrast, where word
order decides; small: 500 short reviews, 72% positive (the case where models
used to stay at the majority class). One run, side by side, with what a user
runs (shard, stats for --max-len, fit or tune, evaluate): test accuracy, F1,
ROC AUC, training seconds and examples/s per model; then the best model
tuned. The baseline (`baseline.py`, scikit-learn in memory) is the
independent yardstick.

    .venv/bin/python benchmarks/zoo_bench.py [--lines 20000] [--models ...] [--tune-trials 6] [--corpora ...]
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

from baseline import tfidf_logreg  # noqa: E402
from models import zoo  # noqa: E402
from models.run_plan import max_len_advice  # noqa: E402
from models.comparison import describe_run  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from models.training import FitSettings, fit, open_data  # noqa: E402
from models.tuning import TuneSettings, tune  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.data_dir import DataDir  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402
from pipeline.stats import corpus_stats  # noqa: E402

# Training lines: `--lines` for simple and hard; "a few hundred reviews", imbalanced, for small.
CORPORA = {"simple": dict(mean_words=80.0), "hard": dict(mean_words=16.0, style="hard"),
           "small": dict(mean_words=15.0, agreement=0.85, positive_share=0.72)}
SMALL_LINES, SMALL_TEST_LINES = 500, 2000
FAST_MODELS = "linear,ngram_bag,ffn,cnn,lstm,cnn_lstm,transformer"  # rnn and the hybrids take minutes each here


def make_data(root: Path, lines: int, test_lines: int, corpus: dict) -> Path:
    train = synthetic.write_corpus(root / "train.ft.txt.bz2", lines, 1, **corpus)
    test = synthetic.write_corpus(root / "test.ft.txt.bz2", test_lines, 2, **corpus)
    shard_corpus(ShardSettings(train=train, test=test, out=root / "data", num_shards=4 if lines > 5000 else 1))
    return root / "data"


def row(name: str, metrics: dict, seconds: float | None, examples_per_second: float | None) -> dict:
    return {"model": name, "accuracy": metrics["accuracy"], "f1": metrics["f1"], "roc_auc": metrics["roc_auc"],
            "train_s": seconds, "examples_per_s": examples_per_second}


def steady_speed(history: list[dict]) -> float:
    """Examples/s of the epochs after the first (which also fills the id cache), or of the only one."""
    epochs = history[1:] or history
    return sum(epoch["examples_per_second"] for epoch in epochs) / len(epochs)


def zoo_row(run_dir: Path, data: DataDir, name: str | None = None) -> dict:
    metrics = evaluate(run_dir, data, errors=0)
    described = describe_run(run_dir)  # the comparison's row: model, training seconds
    return row(name or described["model"], metrics, described["train_seconds"],
               steady_speed(RunDir(run_dir).history()))


def majority_row(data: DataDir) -> dict:
    """Always the training split's more frequent label: the floor every model must clear."""
    train_counts = data.split("train").label_counts
    label = int(train_counts["1"] >= train_counts["0"])
    test = data.split("test")
    accuracy = test.label_counts[str(label)] / test.num_examples
    return row("majority class", {"accuracy": accuracy, "f1": 2 * accuracy / (1 + accuracy) if label else 0.0,
                                  "roc_auc": 0.5}, None, None)


def bench_corpus(root: Path, lines: int, test_lines: int, corpus: dict, model_names: list[str], epochs: int,
                 tune_trials: int) -> list[dict]:
    data_dir = make_data(root, lines, test_lines, corpus)
    data = open_data(data_dir)
    max_len = max_len_advice(corpus_stats(data).training_lengths())[0][1].max_len  # as `stats` advises (cnn)
    click.echo(f"  {data.num_examples('train'):,} training reviews, --max-len {max_len}", err=True)
    baseline = tfidf_logreg(data_dir)
    rows = [majority_row(data),
            row("tfidf+logreg", baseline, baseline["seconds"], baseline["num_train"] / max(baseline["seconds"], 0.1))]
    base = FitSettings(model=model_names[0], data=data_dir, out=root / "runs", epochs=epochs, max_len=max_len,
                       seed=1)
    for name in model_names:
        click.echo(f"  fit {name}", err=True)
        fit(dataclasses.replace(base, model=name, out=root / "runs" / name), verbose=0, data=data)
        rows.append(zoo_row(root / "runs" / name, data))
    best = max((r for r in rows if r["model"] in zoo.MODELS), key=lambda r: r["accuracy"])["model"]
    if tune_trials:
        click.echo(f"  tune {best}", err=True)
        out = root / "runs" / f"{best}-tuned"
        tune(TuneSettings(dataclasses.replace(base, model=best, out=out), "random", tune_trials, max(2, epochs // 2)),
             log=lambda *_: None, verbose=0, data=data)
        rows.append(zoo_row(out, data, f"{best} (tuned)"))
    return sorted(rows, key=lambda r: -r["accuracy"])


def as_markdown(rows: list[dict]) -> str:
    lines = ["| model | test accuracy | F1 | ROC AUC | training s | examples/s (epochs 2+) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        speed = f"{r['examples_per_s']:,.0f}" if r["examples_per_s"] else ""
        seconds = "" if r["train_s"] is None else r["train_s"]
        lines.append(f"| {r['model']} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['roc_auc']:.4f} | {seconds} "
                     f"| {speed} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[str]:
    """The goals, measured: best zoo model against TF-IDF+LR; ngram_bag's speed against ffn's."""
    by_name = {r["model"]: r for r in rows}
    best = max((r for r in rows if r["model"] not in ("tfidf+logreg", "majority class")), key=lambda r: r["accuracy"])
    lines = [f"best zoo model ({best['model']}) / TF-IDF+LR accuracy: "
             f"{best['accuracy'] / by_name['tfidf+logreg']['accuracy']:.3f}"]
    if "ngram_bag" in by_name and "ffn" in by_name:
        lines.append(f"ngram_bag / ffn examples/s (epochs 2+, each at its default batch): "
                     f"{by_name['ngram_bag']['examples_per_s'] / by_name['ffn']['examples_per_s']:.2f}")
    return lines


@click.command()
@click.option("--lines", type=click.IntRange(min=1000), default=20_000, show_default=True,
              help="Training lines per corpus (the test file has a fifth as many).")
@click.option("--models", "model_list", default=FAST_MODELS, show_default=True, help="Zoo models to fit.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True, help="Most epochs per model.")
@click.option("--tune-trials", type=click.IntRange(min=0), default=6, show_default=True,
              help="Trials when tuning the best model (0: no tuning).")
@click.option("--corpora", default="simple,hard,small", show_default=True,
              help="Which corpora: simple and hard (--lines each), small (500 reviews, 72% positive).")
@click.option("--work-dir", default="bench-out/zoo", show_default=True, help="Scratch directory (emptied).")
def main(lines: int, model_list: str, epochs: int, tune_trials: int, corpora: str, work_dir: str) -> None:
    root = ROOT / work_dir
    shutil.rmtree(root, ignore_errors=True)
    for corpus_name in corpora.split(","):
        train_lines, test_lines = (SMALL_LINES, SMALL_TEST_LINES) if corpus_name == "small" else (lines, lines // 5)
        click.echo(f"{corpus_name} corpus ({train_lines:,} training lines):", err=True)
        rows = bench_corpus(root / corpus_name, train_lines, test_lines, CORPORA[corpus_name], model_list.split(","),
                            epochs, tune_trials)
        click.echo(f"\n### {corpus_name} corpus\n{as_markdown(rows)}\n")
        for line in summary(rows):
            click.echo(line)
        click.echo()


if __name__ == "__main__":
    main()
