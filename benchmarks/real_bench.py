"""The zoo on real reviews nobody here wrote: IMDB 50k (the second study's corpus), side by side with its peers.

One run, one split (duplicates dropped, seeded 50/50: `real_corpora.py`), what a user runs: `shard`, then
`fit` with each model's defaults (no --max-len: chosen from the data), `evaluate` on the test half.
Beside them: TF-IDF (1-2 grams) + logistic regression (scikit-learn, in memory), fastText
(`-wordNgrams 2`, 10 epochs; the bench extra), GloVe 6B 50d through `fit --embeddings`, the second
study's own settings for `hybrid` and `hybrid_split` (6,000 words, --max-len 500, Adam 1e-3, early
stopping) against its published 0.8656 / 0.8602, and head / tail / head+tail truncation at --max-len 128.
Every finished run is kept under --out: a second invocation skips it and only adds what is missing.

    .venv/bin/python benchmarks/real_bench.py [--sections baselines,zoo,glove,study,truncation] [--models ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

import numpy as np  # noqa: E402

import real_corpora  # noqa: E402
from baseline import fit_fasttext, load_split, tfidf_logreg  # noqa: E402
from models import embedding_inspection as embedding, zoo  # noqa: E402
from models.zoo.spec import SEQUENCE_LENGTHS  # noqa: E402
from models.evaluation import compute_metrics  # noqa: E402
from models.run_dir import RunDir  # noqa: E402
from models.training import FitSettings, fit, open_data  # noqa: E402
from pipeline import atomic, text  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402
from zoo_bench import zoo_row  # noqa: E402

SECTIONS = ("baselines", "zoo", "glove", "study", "truncation", "lengths", "pretrained")
STUDY = {"hybrid": 0.8656, "hybrid_split": 0.8602}   # the second study's published test accuracies
STUDY_VOCABULARY = 6000
STUDY_SENTENCE = "this movie was the best movie i have ever seen, a masterpiece"
GLOVE_MODELS = ("ffn", "cnn")
TRUNCATION_MODELS = ("ffn", "cnn")
LENGTH_MODELS = {"rnn": (128, 256)}   # --max-len below the sequence models' chosen one, where the default fails


def shard_once(train: Path, test: Path, out: Path, vocab_size: int) -> Path:
    if not (out / "manifest.json").exists():
        shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=4, vocab_size=vocab_size))
    return out


def fit_and_score(out: Path, data, name: str, label: str, **settings) -> dict:
    """Fit (unless a complete run is there) and evaluate on the test split; the run's row."""
    run = RunDir(out)
    if not run.is_complete():
        settings = {"seed": 1, **settings}
        fit(FitSettings(model=name, data=data.path, out=out, **settings), verbose=0,  # resumes a killed run
            data=data)
    result = zoo_row(out, data, label)
    config = run.config()
    calibration = config.calibration or {}
    return {**result, "max_len": config.settings["max_len"], "truncate": config.settings.get("truncate"),
            "epochs": len(run.history()), "test_ece": run.metrics()["calibration"]["ece"],
            "temperature": calibration.get("temperature"), "val_ece_before": calibration.get("ece_before"),
            "val_ece_after": calibration.get("ece_after")}


def fasttext_row(data_dir: Path) -> dict:
    """fastText's supervised model (-wordNgrams 2, 10 epochs) on the same train split, scored on the test split."""
    model, test_texts, test_labels, seconds, num_train = fit_fasttext(data_dir)
    labels, probabilities = model.predict(test_texts, k=2)
    scores = np.array([dict(zip(row_labels, row_p)).get("__label__1", 0.0)
                       for row_labels, row_p in zip(labels, probabilities)])
    metrics = compute_metrics(test_labels, scores)
    return {"model": "fastText (-wordNgrams 2, 10 epochs)", "accuracy": metrics["accuracy"], "f1": metrics["f1"],
            "roc_auc": metrics["roc_auc"], "train_s": round(seconds, 1),
            "examples_per_s": round(10 * num_train / seconds)}


def baseline_rows(data_dir: Path) -> list[dict]:
    tfidf = tfidf_logreg(data_dir)
    return [{"model": "TF-IDF (1-2 grams) + LR", "accuracy": tfidf["accuracy"], "f1": tfidf["f1"],
             "roc_auc": tfidf["roc_auc"], "train_s": tfidf["seconds"], "examples_per_s": None},
            fasttext_row(data_dir)]


def study_rows(out: Path, train: Path, test: Path, epochs: int, log) -> list[dict]:
    """The second study's hybrid models with its settings, and `embed` on one sentence for both."""
    data = open_data(shard_once(train, test, out / "data-6000", STUDY_VOCABULARY + 2))
    rows = []
    for name, published in STUDY.items():
        row = fit_and_score(out / "study" / name, data, name, f"{name} (study settings)", max_len=500,
                            optimizer="adam", learning_rate=1e-3, epochs=epochs, truncate="head")
        tokens, ids, vectors = embedding.embed_sentence(out / "study" / name, STUDY_SENTENCE)
        for layer, matrix in vectors.items():
            log(f"embed {name} [{layer}] {matrix.shape[1]} dimensions; {tokens[1]!r} (id {ids[1]}): "
                + " ".join(f"{v:.3f}" for v in matrix[1][:6]) + " ...")
        rows.append({**row, "published": published})
    return rows


def write_splits(data, out: Path) -> Path:
    """The data directory's splits as JSON lines ({"text", "label"}), for a peer outside TensorFlow."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        if not (out / f"{split}.jsonl").exists():
            texts, labels = load_split(data.path, split)
            with atomic.open_for_write(out / f"{split}.jsonl", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": t, "label": label}) + "\n" for t, label in zip(texts, labels))
    return out


def transformers_row(python: Path, checkpoint: Path, splits: Path, steps: int, eval_every: int, seed: int) -> dict:
    """The same checkpoint fine-tuned by Hugging Face transformers (benchmarks/hf_peer.py, its own venv)."""
    command = [str(python), str(ROOT / "benchmarks" / "hf_peer.py"), "--checkpoint", str(checkpoint),
               "--splits", str(splits), "--steps", str(steps), "--eval-every", str(eval_every), "--max-len", "128",
               "--seed", str(seed)]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def write_results(path: Path, rows: list[dict]) -> None:
    path.write_text(json.dumps(rows, indent=1))


def as_markdown(rows: list[dict]) -> str:
    columns = ["model", "accuracy", "f1", "roc_auc", "train_s", "examples_per_s", "max_len", "truncate", "epochs",
               "steps", "published"]
    shown = [c for c in columns if any(row.get(c) is not None for row in rows)]

    def cell(value):
        return "" if value is None else f"{value:.4f}" if isinstance(value, float) and value < 1 else str(value)

    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in shown) + " |" for row in rows]
    return "\n".join(lines)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "bench-out" / "real",
              show_default=True, help="Corpus files, data directories, runs and results.json.")
@click.option("--sections", default=",".join(SECTIONS), show_default=True, help="Comma-separated parts to run.")
@click.option("--models", default="linear,ngram_bag,ffn,cnn,transformer,lstm,cnn_lstm,rnn,hybrid,hybrid_split",
              show_default=True, help="Zoo models of the zoo section (fastest first).")
@click.option("--epochs", type=int, default=10, show_default=True, help="Most epochs of a bag model's fit.")
@click.option("--sequence-epochs", type=int, default=3, show_default=True,
              help="Most epochs of a sequence model's fit, the study's hybrids too (on 2 CPU cores they take "
                   "minutes an epoch; early stopping may end them sooner).")
@click.option("--pretrained-steps", type=int, default=100, show_default=True,
              help="Batches of 32 per epoch of the pretrained model (3 epochs; the whole split is hours on CPU).")
@click.option("--hf-python", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A Python with torch and transformers (make bench-hf-env: .venv-hf/bin/python): the pretrained "
                   "section then fine-tunes the same checkpoint with transformers too, on the same split and steps.")
@click.option("--seeds", default="1", show_default=True,
              help="Comma-separated seeds of the pretrained section (both fine-tunings run once per seed).")
@click.option("--pretrained-truncations", default="head,head_tail", show_default=True,
              help="--truncate values of the pretrained section's own runs (transformers keeps the head).")
def main(out: Path, sections: str, models: str, epochs: int, sequence_epochs: int, pretrained_steps: int,
         hf_python: Path | None, seeds: str, pretrained_truncations: str) -> None:
    chosen = sections.split(",")
    train, test = real_corpora.imdb_files(out / "imdb")
    data = open_data(shard_once(train, test, out / f"data-{text.SHARD_VOCAB_SIZE}", text.SHARD_VOCAB_SIZE))
    results = out / "results.json"

    def add(new_rows):  # read again first: another invocation may be adding other sections to the same file
        names = {row["model"] for row in new_rows}
        rows = json.loads(results.read_text()) if results.exists() else []
        write_results(results, [row for row in rows if row["model"] not in names] + new_rows)
        for row in new_rows:
            click.echo(json.dumps(row), err=True)

    def epochs_of(name):
        bag = zoo.spec(name).lengths.coverage > SEQUENCE_LENGTHS.coverage
        return epochs if bag else sequence_epochs

    if "baselines" in chosen:
        add(baseline_rows(data.path))
    if "zoo" in chosen:
        for name in models.split(","):
            add([fit_and_score(out / "runs" / name, data, name, name, epochs=epochs_of(name))])
    if "glove" in chosen:
        vectors = real_corpora.glove_file(out / "glove")
        for name in GLOVE_MODELS:
            add([fit_and_score(out / "runs" / f"{name}-glove", data, name, f"{name} + GloVe 6B 50d",
                               embeddings=vectors, epochs=epochs_of(name))])
    if "study" in chosen:
        add(study_rows(out, train, test, sequence_epochs, lambda line: click.echo(line, err=True)))
    if "pretrained" in chosen:  # a capped number of steps on CPU: validation accuracy every `--pretrained-steps`
        preset = real_corpora.minilm_dir(out / "models")
        for seed in map(int, seeds.split(",")):
            for truncate in pretrained_truncations.split(","):
                suffix = (f" {truncate}" if truncate != "head" else "") + (f" seed {seed}" if seed != 1 else "")
                run_dir = out / "runs" / f"pretrained-minilm{suffix.replace(' ', '-')}"
                row = fit_and_score(run_dir, data, "pretrained", f"pretrained (all-MiniLM-L6-v2){suffix}",
                                    preset=preset, max_len=128, truncate=truncate, epochs=3,
                                    steps_per_epoch=pretrained_steps, validation_steps=20, seed=seed)
                curve = [(row_["epoch"] * pretrained_steps, round(row_["val_accuracy"], 4))
                         for row_ in RunDir(run_dir).history()]
                add([{**row, "steps": 3 * pretrained_steps, "val_accuracy_by_step": curve}])
                if hf_python is not None and truncate == "head":  # right after ours: the same machine, load
                    peer = transformers_row(hf_python, preset, write_splits(data, out / "splits"),
                                            3 * pretrained_steps, pretrained_steps, seed)
                    add([{**peer, "model": f"transformers (all-MiniLM-L6-v2){suffix}"}])
    if "truncation" in chosen:
        for name in TRUNCATION_MODELS:
            add([fit_and_score(out / "runs" / f"{name}-128-{truncate}-e{epochs}", data, name,
                               f"{name} --max-len 128 {truncate}", max_len=128, truncate=truncate, epochs=epochs)
                 for truncate in ("head", "tail", "head_tail")])
    if "lengths" in chosen:
        for name, lengths in LENGTH_MODELS.items():
            add([fit_and_score(out / "runs" / f"{name}-{length}", data, name, f"{name} --max-len {length}",
                               max_len=length, epochs=epochs_of(name)) for length in lengths])
    click.echo(as_markdown(json.loads(results.read_text()) if results.exists() else []))
    click.echo(f"\n{data.num_examples('train'):,} training, {data.num_examples('validation'):,} validation and "
               f"{data.num_examples('test'):,} test reviews (IMDB 50k, duplicates dropped, seeded 50/50) -> {results}")


if __name__ == "__main__":
    main()
