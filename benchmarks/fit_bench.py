"""Streaming from shards vs training from numpy arrays in memory (the studies' way), side by side.

For each model: examples/s of a full epoch fed by `fit`'s tf.data pipeline
(token ids cached on disk during the first epoch), of the same epoch fed from
pre-vectorized arrays, and their ratio; plus the input pipeline's own rate
with no model, with and without the cache. The first epoch of each is warm-up
and not counted. Usage:

    .venv/bin/python benchmarks/fit_bench.py [--lines 20000] [--models ffn,cnn,lstm]
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import numpy as np  # noqa: E402

from models.training import FitSettings, build_and_compile, make_plan  # noqa: E402
from pipeline import dataset, synthetic, text  # noqa: E402
from pipeline.data_dir import DataDir  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.last = time.perf_counter() - self.started


def timed_fit(model, data, num_examples: int, **kwargs) -> float:
    """Examples per second of the second of two full epochs (the first is warm-up, and fills the cache)."""
    timer = EpochTimer()
    model.fit(data, epochs=2, callbacks=[timer], verbose=0, **kwargs)
    return num_examples / timer.last


def in_memory_arrays(data_dir: Path, vectorizer) -> tuple[np.ndarray, np.ndarray]:
    """The whole train split vectorized into numpy arrays, as the reference notebooks do."""
    ids, labels = [], []
    for texts, batch_labels in dataset.make_text_dataset(DataDir.open(data_dir), "train", 1024):
        ids.append(vectorizer(texts).numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(ids), np.concatenate(labels)


def streaming(data_dir: Path, batch_size: int, vectorizer, cache_path: Path | None) -> tf.data.Dataset:
    """The training input of `fit`: shuffled, vectorized, cached on disk unless `cache_path` is None."""
    shutil.rmtree(cache_path.parent, ignore_errors=True) if cache_path else None
    return dataset.make_dataset(DataDir.open(data_dir), "train", batch_size, shuffle=True, seed=0,
                                vectorizer=vectorizer, cache_path=cache_path)


def pipeline_rate(ds, num_examples: int) -> float:
    """Examples per second of an input pipeline alone (second pass)."""
    for _ in ds:
        pass
    started = time.perf_counter()
    for _ in ds:
        pass
    return num_examples / (time.perf_counter() - started)


@click.command()
@click.option("--lines", default=20_000, show_default=True, help="Lines of the synthetic train corpus.")
@click.option("--models", "model_names", default="ffn,cnn,lstm", show_default=True, help="Comma-separated.")
@click.option("--batch-size", default=64, show_default=True, help="Batch size of both ways.")
@click.option("--repeats", default=2, show_default=True, help="Alternating runs of each way; the best counts.")
@click.option("--work-dir", default=str(ROOT / "bench-out"), show_default=True, help="Where data goes.")
def main(lines: int, model_names: str, batch_size: int, repeats: int, work_dir: str) -> None:
    work = Path(work_dir)
    data_dir = work / f"fit-data-{lines}"
    if not (data_dir / "manifest.json").exists():
        train = synthetic.write_corpus(work / f"fit-train-{lines}.ft.txt.bz2", lines, seed=1)
        test = synthetic.write_corpus(work / "fit-test.ft.txt.bz2", 500, seed=2)
        shard_corpus(ShardSettings(train=train, test=test, out=data_dir, num_shards=4, overwrite=True))
    vectorizer = text.vocabulary_vectorizer(DataDir.open(data_dir).vocabulary(), text.DEFAULT_MAX_LEN)
    x, y = in_memory_arrays(data_dir, vectorizer)
    cache = work / "fit-bench-cache" / "train"
    rows = []
    for name in model_names.split(","):
        settings = FitSettings(model=name, data=data_dir, out=work, seed=0, max_len=text.DEFAULT_MAX_LEN)
        plan = make_plan(settings)
        streamed, in_memory = [], []
        for _ in range(repeats):  # alternate, so that a noisy neighbour hurts both ways alike
            keras.utils.set_random_seed(0)
            streamed.append(timed_fit(build_and_compile(plan, settings, vectorizer.vocabulary_size()),
                                      streaming(data_dir, batch_size, vectorizer, cache), len(x)))
            keras.utils.set_random_seed(0)
            in_memory.append(timed_fit(build_and_compile(plan, settings, vectorizer.vocabulary_size()), x, len(x),
                                       y=y, batch_size=batch_size, shuffle=True))
        rows.append((name, max(streamed), max(in_memory)))
    alone = pipeline_rate(streaming(data_dir, batch_size, vectorizer, cache), len(x))
    uncached = pipeline_rate(streaming(data_dir, batch_size, vectorizer, None), len(x))
    click.echo(f"\n{'model':>8} {'streaming ex/s':>15} {'in-memory ex/s':>15} {'ratio':>6}")
    for name, streamed, in_memory in rows:
        click.echo(f"{name:>8} {streamed:>15,.0f} {in_memory:>15,.0f} {streamed / in_memory:>6.2f}")
    fastest = max(max(s, m) for _, s, m in rows)
    click.echo(f"\ninput pipeline alone, epoch 2 (ids cached on disk): {alone:,.0f} ex/s = {alone / fastest:.1f}x "
               f"the fastest model's training rate (goal >= 10x)\n"
               f"input pipeline alone without the cache (every epoch, and fit's first): {uncached:,.0f} ex/s = "
               f"{uncached / fastest:.1f}x\nratio goal >= 0.97; {len(x):,} training examples; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
