"""A TF-IDF (word 1-2 grams) + logistic regression baseline next to the neural runs.

Does a neural model earn its cost? Trains scikit-learn's classic text
classifier on a data directory's train split, scores the test split, and prints
its accuracy, F1 and ROC AUC beside each given run's metrics.json. The baseline
holds its split in memory: it is a yardstick for corpora that fit, not a tool.

    .venv/bin/python benchmarks/baseline.py --data demo/data demo/runs/*/
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from models.evaluation import compute_metrics  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from pipeline import dataset  # noqa: E402
from pipeline.data_dir import DataDir  # noqa: E402


def load_split(data_dir: Path, split: str) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for batch_texts, batch_labels in dataset.make_text_dataset(DataDir.open(data_dir), split, 4096):
        texts += [t.decode("utf-8") for t in batch_texts.numpy().tolist()]
        labels += batch_labels.numpy().reshape(-1).astype(int).tolist()
    return texts, labels


def fit_tfidf_logreg(data_dir: Path):
    """TF-IDF (word 1-2 grams, sublinear tf) + logistic regression (multinomial for N classes) fitted on the
    train split: (classifier, test texts, test labels, fitting seconds, training examples)."""
    train_texts, train_labels = load_split(data_dir, "train")
    test_texts, test_labels = load_split(data_dir, "test")
    classifier = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                               LogisticRegression(max_iter=2000, C=4.0))
    started = time.perf_counter()
    classifier.fit(train_texts, train_labels)
    return classifier, test_texts, np.array(test_labels), time.perf_counter() - started, len(train_texts)


def fit_fasttext(data_dir: Path):
    """fastText supervised (-wordNgrams 2, 10 epochs; the bench extra) on the train split: (model, test texts,
    test labels, fitting seconds, training examples)."""
    import tempfile

    import fasttext

    train_texts, train_labels = load_split(data_dir, "train")
    test_texts, test_labels = load_split(data_dir, "test")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.writelines(f"__label__{label} {text}\n" for text, label in zip(train_texts, train_labels))
    started = time.perf_counter()
    model = fasttext.train_supervised(f.name, wordNgrams=2, epoch=10, verbose=0, seed=1, thread=2)
    seconds = time.perf_counter() - started
    Path(f.name).unlink()
    return model, test_texts, np.array(test_labels), seconds, len(train_texts)


def tfidf_logreg(data_dir: Path) -> dict:
    """Test metrics of TF-IDF (word 1-2 grams, sublinear tf) + logistic regression trained on the train split."""
    classifier, test_texts, test_labels, seconds, num_train = fit_tfidf_logreg(data_dir)
    return {**compute_metrics(test_labels, classifier.predict_proba(test_texts)[:, 1]),
            "num_train": num_train, "num_test": len(test_texts), "seconds": round(seconds, 1)}


@click.command()
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Data directory written by `shard`.")
@click.argument("runs", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
def main(data: Path, runs: tuple[Path, ...]) -> None:
    baseline = tfidf_logreg(data)
    rows = [("tfidf+logreg", baseline, f"{baseline['seconds']:.1f}")]
    for run in map(RunDir, runs):
        metrics = run.metrics()
        if metrics is not None:
            rows.append((run.name, metrics, f"{sum(r['train_seconds'] for r in run.history()):.1f}"))
    click.echo(f"{'model':>14} {'accuracy':>9} {'f1':>7} {'roc_auc':>8} {'train s':>8}")
    for name, metrics, train_seconds in sorted(rows, key=lambda r: -r[1]["accuracy"]):
        click.echo(f"{name:>14} {metrics['accuracy']:>9.4f} {metrics['f1']:>7.4f} {metrics['roc_auc']:>8.4f} "
                   f"{train_seconds:>8}")
    click.echo(f"\n{baseline['num_train']:,} training and {baseline['num_test']:,} test reviews from {data}")


if __name__ == "__main__":
    main()
