"""Every zoo model beside TF-IDF + logistic regression, on the simple and the hard synthetic language.

One run, side by side, with the commands a user runs (shard, stats for
--max-len, fit or tune, evaluate): test accuracy, F1, ROC AUC, training
seconds and examples/s per model; then the best model tuned. The baseline
(`baseline.py`, scikit-learn in memory) is the independent yardstick.

    .venv/bin/python benchmarks/zoo_bench.py [--lines 20000] [--models ...] [--tune-trials 6]
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
from models.comparison import describe_run  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.training import FitSettings, fit  # noqa: E402
from models.tuning import TuneSettings, tune  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.data_dir import DataDir  # noqa: E402
from pipeline.shard_corpus import shard_corpus  # noqa: E402
from pipeline.shard_plan import ShardSettings  # noqa: E402
from pipeline.stats import corpus_stats  # noqa: E402

CORPORA = {"simple": dict(mean_words=80.0), "hard": dict(mean_words=16.0, style="hard")}
FAST_MODELS = "linear,ngram_bag,ffn,cnn,lstm,cnn_lstm,transformer"  # rnn and the hybrids take minutes each here


def make_data(root: Path, lines: int, corpus: dict) -> Path:
    train = synthetic.write_corpus(root / "train.ft.txt.bz2", lines, 1, **corpus)
    test = synthetic.write_corpus(root / "test.ft.txt.bz2", lines // 5, 2, **corpus)
    shard_corpus(ShardSettings(train=train, test=test, out=root / "data", num_shards=4))
    return root / "data"


def row(name: str, metrics: dict, seconds: float, examples_per_second: float | None) -> dict:
    return {"model": name, "accuracy": metrics["accuracy"], "f1": metrics["f1"], "roc_auc": metrics["roc_auc"],
            "train_s": seconds, "examples_per_s": examples_per_second}


def zoo_row(run_dir: Path, data: DataDir, name: str | None = None) -> dict:
    metrics = evaluate(run_dir, data)
    described = describe_run(run_dir)
    return row(name or described["model"], metrics, described["train_seconds"], described["examples_per_second"])


def bench_corpus(root: Path, lines: int, corpus: dict, model_names: list[str], epochs: int,
                 tune_trials: int) -> list[dict]:
    data_dir = make_data(root, lines, corpus)
    data = DataDir.open(data_dir)
    max_len = corpus_stats(data_dir).recommended_max_len()  # as `stats` advises a user
    click.echo(f"  {data.num_examples('train'):,} training reviews, --max-len {max_len}", err=True)
    baseline = tfidf_logreg(data_dir)
    rows = [row("tfidf+logreg", baseline, baseline["seconds"], baseline["num_train"] / max(baseline["seconds"], 0.1))]
    base = FitSettings(model=model_names[0], data=data_dir, out=root / "runs", epochs=epochs, max_len=max_len,
                       seed=1)
    for name in model_names:
        click.echo(f"  fit {name}", err=True)
        fit(dataclasses.replace(base, model=name, out=root / "runs" / name), verbose=0)
        rows.append(zoo_row(root / "runs" / name, data))
    best = max((r for r in rows if r["model"] in zoo.MODELS), key=lambda r: r["accuracy"])["model"]
    if tune_trials:
        click.echo(f"  tune {best}", err=True)
        out = root / "runs" / f"{best}-tuned"
        tune(TuneSettings(dataclasses.replace(base, model=best, out=out), "random", tune_trials, max(2, epochs // 2)),
             log=lambda *_: None)
        rows.append(zoo_row(out, data, f"{best} (tuned)"))
    return sorted(rows, key=lambda r: -r["accuracy"])


def as_markdown(rows: list[dict]) -> str:
    lines = ["| model | test accuracy | F1 | ROC AUC | training s | examples/s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        speed = f"{r['examples_per_s']:,.0f}" if r["examples_per_s"] else ""
        lines.append(f"| {r['model']} | {r['accuracy']:.4f} | {r['f1']:.4f} | {r['roc_auc']:.4f} | "
                     f"{r['train_s']} | {speed} |")
    return "\n".join(lines)


@click.command()
@click.option("--lines", type=click.IntRange(min=1000), default=20_000, show_default=True,
              help="Training lines per corpus (the test file has a fifth as many).")
@click.option("--models", "model_list", default=FAST_MODELS, show_default=True, help="Zoo models to fit.")
@click.option("--epochs", type=click.IntRange(min=1), default=6, show_default=True, help="Most epochs per model.")
@click.option("--tune-trials", type=click.IntRange(min=0), default=6, show_default=True,
              help="Trials when tuning the best model (0: no tuning).")
@click.option("--corpora", default="simple,hard", show_default=True, help="Which synthetic styles.")
@click.option("--work-dir", default="bench-out/zoo", show_default=True, help="Scratch directory (emptied).")
def main(lines: int, model_list: str, epochs: int, tune_trials: int, corpora: str, work_dir: str) -> None:
    root = ROOT / work_dir
    shutil.rmtree(root, ignore_errors=True)
    for corpus_name in corpora.split(","):
        click.echo(f"{corpus_name} corpus ({lines:,} training lines):", err=True)
        rows = bench_corpus(root / corpus_name, lines, CORPORA[corpus_name], model_list.split(","), epochs,
                            tune_trials)
        click.echo(f"\n### {corpus_name} corpus\n{as_markdown(rows)}\n")
        best_zoo = max(r["accuracy"] for r in rows if r["model"] != "tfidf+logreg")
        tfidf = next(r["accuracy"] for r in rows if r["model"] == "tfidf+logreg")
        click.echo(f"best zoo model / TF-IDF+LR accuracy: {best_zoo / tfidf:.3f}\n")


if __name__ == "__main__":
    main()
