"""Training and prediction speed beside the peers users choose for speed, measured side by side in one run.

- `bags`: `ngram_bag` against fastText with the same settings (word bigrams, 16 dimensions, 2^18 buckets,
  2 threads, 5 epochs; ngram_bag twice: as `fit` trains it, where early stopping may end it sooner, and
  through all 5 epochs, fastText's work), and against itself without the XLA step its plan picks for runs
  of enough steps, and `linear` against scikit-learn's TF-IDF (1-2 grams) + logistic regression, on
  the same reviews. Training counts the whole of it for every side: reviewflow's `fit` from the shards
  (the statistics pass, the first epoch that fills the id cache, calibration and saving included);
  fastText from its text file; scikit-learn from texts in memory (reading them not counted). Prediction:
  texts/s of `predict` over the test file's reviews and of `evaluate`, against fastText's `predict`, each
  loading its saved model first (model.keras; fastText's .bin).
- `zoo`: every zoo model's training examples/s on IMDB at its chosen --max-len, with batches padded to
  --max-len (`--no-length-buckets`, as before) and by length (the default), same steps, side by side.
- `accuracy`: the models this CPU trains whole in minutes (ACCURACY_MODELS), fitted with their defaults
  both ways on IMDB: test accuracy, examples/s of epochs 2+, fit seconds.

Corpora: `amazon` (a synthetic Amazon-like corpus of short reviews, 200k lines, made here), `imdb`
(IMDB 50k from the package registry: `benchmarks/real_corpora.py`; long reviews) and, when asked for,
`amazon-large` (the same generator, 500k lines: enough steps for ngram_bag's plan to compile its step) and
`amazon-full` (Amazon polarity's own sizes, 3.6M training and 400k test lines; ngram_bag and fastText only:
scikit-learn's fit alone would take most of an hour here).

    .venv/bin/python benchmarks/speed_bench.py [--sections bags,zoo,accuracy] [--corpora amazon,imdb]
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

import numpy as np  # noqa: E402

import real_corpora  # noqa: E402
from baseline import load_split  # noqa: E402
from models import zoo  # noqa: E402
from models.evaluation import compute_metrics, evaluate, predict  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from models.training import FitSettings, fit, open_data  # noqa: E402
from pipeline import synthetic  # noqa: E402
from zoo_bench import steady_speed  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402

SECTIONS = ("bags", "zoo", "accuracy")
CORPORA = ("amazon", "imdb")   # and amazon-large, amazon-full (AMAZON_LINES)
# Training and test lines of each synthetic corpus: amazon-large's steps are enough for ngram_bag's plan to compile
# its step with XLA; amazon-full has Amazon polarity's own sizes.
AMAZON_LINES = {"amazon": (200_000, 20_000), "amazon-large": (500_000, 20_000), "amazon-full": (3_600_000, 400_000)}
ONLY_NGRAM_BAG = ("amazon-full",)   # corpora whose bags section times ngram_bag and fastText only
EPOCHS = 5
# fastText's settings, as the issue measured them: the same as ngram_bag's defaults.
FASTTEXT = dict(wordNgrams=2, dim=16, bucket=1 << 18, thread=2, epoch=EPOCHS, verbose=0, seed=1)
SAME_EPOCHS = f"ngram_bag, all {EPOCHS} epochs"   # the row that trains as many epochs as fastText (patience EPOCHS)
NO_XLA = "ngram_bag --no-jit-compile"   # the row of the same fit without the XLA step
SKLEARN = "TF-IDF+LR (scikit-learn)"
FASTTEXT_ATTEMPTS = 5   # a diverged fastText run is timed again (the table says how many it took)
ZOO_STEPS = 10   # training steps timed per model and padding (after one warm-up epoch of the same steps)
ACCURACY_MODELS = "linear,ngram_bag,ffn,cnn"   # trained whole both ways: the models this CPU trains in minutes


def corpus_dir(name: str, out: Path) -> Path:
    """The corpus's data directory (sharded once, 32768 ids as `shard`'s default)."""
    root = out / name
    data = root / "data"
    if (data / "manifest.json").exists():
        return data
    if name in AMAZON_LINES:
        train, test = root / "train.ft.txt", root / "test.ft.txt"
        train_lines, test_lines = AMAZON_LINES[name]
        synthetic.write_corpus(train, train_lines, seed=1)
        synthetic.write_corpus(test, test_lines, seed=2)
    else:
        train, test = real_corpora.imdb_files(root)
    shard_corpus(ShardSettings(train=train, test=test, out=data, num_shards=4))
    return data


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def fit_row(data: Path, out: Path, model: str, label: str | None = None, **settings) -> dict:
    """`fit` with the model's defaults (and `settings`), timed whole; then `evaluate` and `predict`, timed."""
    shutil.rmtree(out, ignore_errors=True)
    data_dir = open_data(data)
    result, seconds = timed(fit, FitSettings(model=model, data=data, out=out, seed=1, **settings), verbose=0,
                            data=data_dir)
    epochs = RunDir(out).history()
    metrics, evaluate_seconds = timed(evaluate, out, data_dir, errors=0)
    texts, _ = load_split(data, "test")
    _, predict_seconds = timed(lambda: sum(1 for _ in predict(out, iter(texts), None)))
    trained = len(epochs) * data_dir.num_examples("train")
    return {"model": label or model, "accuracy": metrics["accuracy"], "train_s": round(seconds, 1),
            "epochs": len(epochs), "train_examples_per_s": round(trained / seconds),
            # Each epoch's training seconds: the first vectorizes into the id cache; an outlier is this machine.
            "epoch_train_s": " / ".join(f"{row['train_seconds']:.1f}" for row in epochs),
            "evaluate_texts_per_s": round(data_dir.num_examples("test") / evaluate_seconds),
            "predict_texts_per_s": round(len(texts) / predict_seconds)}


def fasttext_row(data: Path) -> dict:
    """fastText supervised with FASTTEXT's settings: its whole training from a text file, then `predict`."""
    import fasttext

    train_texts, train_labels = load_split(data, "train")
    test_texts, test_labels = load_split(data, "test")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as file:
        file.writelines(f"__label__{label} {text}\n" for text, label in zip(train_texts, train_labels))
    try:
        for attempt in range(1, FASTTEXT_ATTEMPTS + 1):
            try:  # its 2 lock-free threads sometimes diverge on IMDB's long reviews ("Encountered NaN")
                model, seconds = timed(fasttext.train_supervised, file.name, **FASTTEXT)
                break
            except RuntimeError as error:
                click.echo(f"fastText attempt {attempt}: {error}", err=True)
                if attempt == FASTTEXT_ATTEMPTS:  # the row says so, and the ratios against it are left out
                    return {"model": "fastText", "accuracy": None, "epochs": EPOCHS, "attempts": attempt,
                            "failed": str(error)}
    finally:
        Path(file.name).unlink()
    one_line = [text.replace("\n", " ") for text in test_texts]   # fastText predicts one line per text
    # From its saved file, as reviewflow's `predict` loads model.keras: a user's prediction run pays the load.
    saved = Path(file.name).with_suffix(".bin")
    model.save_model(str(saved))
    (labels, probabilities), predict_seconds = timed(lambda: fasttext.load_model(str(saved)).predict(one_line))
    saved.unlink()
    positive = np.array([p[0] if label[0] == "__label__1" else 1 - p[0] for label, p in zip(labels, probabilities)])
    accuracy = compute_metrics(np.array(test_labels), positive)["accuracy"]
    return {"model": "fastText", "accuracy": accuracy, "train_s": round(seconds, 1), "epochs": EPOCHS,
            "attempts": attempt,
            "train_examples_per_s": round(EPOCHS * len(train_texts) / seconds),
            "predict_texts_per_s": round(len(test_texts) / predict_seconds)}


def sklearn_row(data: Path) -> dict:
    """TF-IDF (1-2 grams, min_df 2, sublinear tf) + logistic regression (C 4), fitted on texts in memory."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train_texts, train_labels = load_split(data, "train")
    test_texts, test_labels = load_split(data, "test")
    classifier = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                               LogisticRegression(max_iter=2000, C=4.0))
    _, seconds = timed(classifier.fit, train_texts, train_labels)
    scores, predict_seconds = timed(classifier.predict_proba, test_texts)
    return {"model": SKLEARN, "accuracy": compute_metrics(np.array(test_labels), scores[:, 1])[
        "accuracy"], "train_s": round(seconds, 1), "epochs": None,
        "train_examples_per_s": round(len(train_texts) / seconds),
        "predict_texts_per_s": round(len(test_texts) / predict_seconds)}


def bag_rows(data: Path, out: Path, only_ngram_bag: bool = False) -> list[dict]:
    """ngram_bag beside fastText (and beside itself without the XLA step its plan chooses for enough steps),
    linear beside scikit-learn, in one run, after a few warm-up steps (the first fit of a process pays ~2 s
    of TensorFlow's own start-up, which would favour whichever row came second). `only_ngram_bag`: the first three."""
    fit(FitSettings(model="ngram_bag", data=data, out=out / "warm-up", epochs=1, steps_per_epoch=2,
                    validation_steps=1, calibrate=False), verbose=0)
    shutil.rmtree(out / "warm-up")
    rows = [fasttext_row(data), fit_row(data, out / "ngram_bag", "ngram_bag", epochs=EPOCHS),
            # Every one of fastText's epochs, as fastText trains them: examples/s of the same work. Early stopping
            # still keeps the best epoch's weights; it only no longer ends the run before the fifth.
            fit_row(data, out / "ngram_bag-all-epochs", "ngram_bag", SAME_EPOCHS, epochs=EPOCHS, patience=EPOCHS)]
    if only_ngram_bag:
        return rows
    rows.append(fit_row(data, out / "ngram_bag-no-xla", "ngram_bag", NO_XLA, epochs=EPOCHS,
                        jit_compile=False))
    return rows + [sklearn_row(data), fit_row(data, out / "linear", "linear")]


def bag_ratio_rows(rows: list[dict]) -> list[tuple[str, float, tuple[float, float] | None]]:
    """One run's ratios, the goals' (>= 1 for ngram_bag / fastText, <= 1 for linear / scikit-learn's time):
    (name, value, the two sides' accuracies where the ratio compares two models' training)."""
    by_model = {row["model"]: row for row in rows}

    def ratio(name: str, model: str, peer: str, field: str, accuracies: bool = True, peer_field: str | None = None):
        mine, theirs, peer_field = by_model[model], by_model[peer], peer_field or field
        if field not in mine or peer_field not in theirs:  # a peer that failed (fastText's NaN)
            return None
        return name, mine[field] / theirs[peer_field], (mine["accuracy"], theirs["accuracy"]) if accuracies else None

    found = [ratio(f"{model} / fastText training examples/s", model, "fastText", "train_examples_per_s")
             for model in ("ngram_bag", SAME_EPOCHS)]
    found.append(ratio("ngram_bag predict / fastText predict texts/s", "ngram_bag", "fastText",
                       "predict_texts_per_s", accuracies=False))
    # evaluate does more than score (metrics, calibration, accuracy by length, plots); the issue compares it too.
    found.append(ratio("ngram_bag evaluate / fastText predict texts/s", "ngram_bag", "fastText",
                       "evaluate_texts_per_s", accuracies=False, peer_field="predict_texts_per_s"))
    if NO_XLA in by_model:
        found.append(ratio(f"ngram_bag / {NO_XLA} training examples/s", "ngram_bag", NO_XLA, "train_examples_per_s",
                           accuracies=False))
    if "linear" in by_model:
        found.append(ratio("linear / scikit-learn training time", "linear", SKLEARN, "train_s"))
    return [row for row in found if row is not None]


def bag_ratio_values(rows: list[dict]) -> dict[str, float]:
    """`bag_ratio_rows`' values by name (what `median_lines` gathers over repeated runs)."""
    return {name: value for name, value, _ in bag_ratio_rows(rows)}


def bag_ratios(rows: list[dict]) -> list[str]:
    """`bag_ratio_rows` as lines, with the accuracies each training ratio was measured at."""
    return [f"{name}: {value:.2f}" + (f" (accuracy {accuracies[0]:.4f} vs {accuracies[1]:.4f})" if accuracies else "")
            for name, value, accuracies in bag_ratio_rows(rows)]


def median_lines(runs: list[dict[str, float]]) -> list[str]:
    """Each ratio's median and range over repeated runs (this machine's noise moves one run's by ~20%)."""
    names = list(dict.fromkeys(name for run in runs for name in run))   # a run whose peer failed lacks some
    lines = []
    for name in names:
        values = [run[name] for run in runs if name in run]
        lines.append(f"{name}: median {np.median(values):.2f} over {len(values)} runs "
                     f"({', '.join(f'{value:.2f}' for value in values)})")
    return lines


def both_ways(out: Path, models: list[str], measure) -> list[dict]:
    """A row per model: `measure(model, run directory, length_buckets)`'s fields, padded to --max-len then by
    length, each prefixed with its way (max_len_..., by_length_...; the chosen `max_len` as it is)."""
    rows = []
    for model in models:
        row = {"model": model}
        for label, buckets in (("max_len", False), ("by_length", True)):
            run = out / f"{model}-{label}"
            shutil.rmtree(run, ignore_errors=True)
            row.update({key if key == "max_len" else f"{label}_{key}": value
                        for key, value in measure(model, run, buckets).items()})
        rows.append(row)
        click.echo(json.dumps(row), err=True)
    return rows


def zoo_rows(data: Path, out: Path, models: list[str]) -> list[dict]:
    """Each model's training examples/s padded to --max-len and by length: ZOO_STEPS steps of its default batch
    after a warm-up epoch of as many (compilation)."""
    def measure(model: str, run: Path, buckets: bool) -> dict:
        # No id cache either way: capped epochs never finish a pass, so it would never be read.
        fit(FitSettings(model=model, data=data, out=run, seed=1, epochs=2, steps_per_epoch=ZOO_STEPS,
                        validation_steps=2, calibrate=False, cache=False, length_buckets=buckets), verbose=0)
        measured = {"examples_per_s": round(RunDir(run).history()[-1]["examples_per_second"], 1),
                    "max_len": json.loads((run / "config.json").read_text())["max_len"]["max_len"]}
        shutil.rmtree(run, ignore_errors=True)
        return measured

    rows = both_ways(out / "zoo", models, measure)
    for row in rows:
        row["speedup"] = round(row["by_length_examples_per_s"] / row["max_len_examples_per_s"], 2)
    return rows


def accuracy_rows(data: Path, out: Path, models: list[str]) -> list[dict]:
    """Each model trained with its defaults padded to --max-len and by length: test accuracy, examples/s."""
    def measure(model: str, run: Path, buckets: bool) -> dict:
        _, seconds = timed(fit, FitSettings(model=model, data=data, out=run, seed=1, length_buckets=buckets),
                           verbose=0)
        history = RunDir(run).history()
        return {"accuracy": round(evaluate(run, open_data(data), errors=0)["accuracy"], 4),
                "examples_per_s": round(steady_speed(history)), "fit_s": round(seconds, 1), "epochs": len(history)}

    return both_ways(out / "accuracy", models, measure)


def as_markdown(rows: list[dict]) -> str:
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [key for key in row if key not in keys]
    lines = ["| " + " | ".join(keys) + " |", "| " + " | ".join("---" for _ in keys) + " |"]
    lines += ["| " + " | ".join("" if row.get(key) is None else (f"{row[key]:.4f}" if key == "accuracy" else
                                                                  str(row[key])) for key in keys) + " |"
              for row in rows]
    return "\n".join(lines)


@click.command()
@click.option("--sections", default=",".join(SECTIONS), show_default=True, help="Comma-separated: bags, zoo.")
@click.option("--corpora", default=",".join(CORPORA), show_default=True,
              help="Comma-separated corpora for `bags` (the zoo section uses imdb).")
@click.option("--models", "model_list", default=",".join(name for name in zoo.MODELS if name != "pretrained"),
              show_default=True, help="The zoo section's models.")
@click.option("--accuracy-models", default=ACCURACY_MODELS, show_default=True,
              help="The accuracy section's models (each trained twice with its defaults).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Times the `bags` section runs each corpus, one run after another: each run's ratios, then "
                   "their medians.")
@click.option("--out", type=click.Path(path_type=Path), default=ROOT / "bench-out" / "speed", show_default=True,
              help="Where corpora, shards and runs go.")
def main(sections: str, corpora: str, model_list: str, accuracy_models: str, repeats: int, out: Path) -> None:
    results = {}
    if "bags" in sections.split(","):
        for corpus in corpora.split(","):
            data = corpus_dir(corpus, out)
            runs = []
            for repeat in range(1, repeats + 1):
                rows = bag_rows(data, out / corpus / "runs", corpus in ONLY_NGRAM_BAG)
                results[f"bags-{corpus}" + (f"-{repeat}" if repeats > 1 else "")] = rows
                runs.append(bag_ratio_values(rows))
                click.echo(f"\n## {corpus}: the bag models beside their peers"
                           f"{f' (run {repeat} of {repeats})' if repeats > 1 else ''}\n\n{as_markdown(rows)}\n")
                for line in bag_ratios(rows):
                    click.echo(line)
                (out / "speed_bench.json").write_text(json.dumps(results, indent=1))   # kept if a later run fails
            if repeats > 1:
                click.echo(f"\n## {corpus}: the ratios over {repeats} runs\n")
                for line in median_lines(runs):
                    click.echo(line)
    if "zoo" in sections.split(","):
        rows = zoo_rows(corpus_dir("imdb", out), out / "imdb" / "runs", model_list.split(","))
        results["zoo"] = rows
        click.echo(f"\n## IMDB: training examples/s, padded to --max-len vs by length\n\n{as_markdown(rows)}\n")
    if "accuracy" in sections.split(","):
        rows = accuracy_rows(corpus_dir("imdb", out), out / "imdb" / "runs", accuracy_models.split(","))
        results["accuracy"] = rows
        click.echo(f"\n## IMDB: trained with defaults, padded to --max-len vs by length\n\n{as_markdown(rows)}\n")
    (out / "speed_bench.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
