"""Training time and activation memory per example against --max-len, for every zoo model.

What `fit`'s choice of --max-len trades: a longer cut keeps more of a long
review, and costs per step. Each model trains a few steps on random ids at each
length, side by side in one run; printed as examples/s and as the slowdown
against the shortest length (ratios: the machine is shared, absolute figures
mean little).

    .venv/bin/python benchmarks/max_len_bench.py [--lengths 128,256,512,1024] [--steps 6]
"""

from __future__ import annotations

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
from models.training import FitSettings, build_and_compile, make_plan  # noqa: E402

VOCAB = 8192


def examples_per_second(name: str, max_len: int, steps: int) -> float | None:
    """Training examples/s at this length; None when a step does not fit in memory."""
    try:
        return _examples_per_second(name, max_len, steps)
    except tf.errors.ResourceExhaustedError:  # attention's (batch, heads, length, length) scores, say
        return None


def _examples_per_second(name: str, max_len: int, steps: int) -> float:
    settings = FitSettings(model=name, data=".", out=".", max_len=max_len)
    plan = make_plan(settings)
    model = build_and_compile(plan, settings, VOCAB)
    batch = plan.batch_size
    rng = np.random.default_rng(0)
    ids = rng.integers(2, VOCAB, size=(batch, max_len)).astype("int32")
    labels = rng.integers(0, 2, size=(batch, 1)).astype("float32")
    model.train_on_batch(ids, labels)  # traced and warmed up
    started = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(ids, labels)
    return steps * batch / (time.perf_counter() - started)


@click.command()
@click.option("--models", default=",".join(zoo.MODELS), show_default=True)
@click.option("--lengths", default="128,256,512,1024,2048", show_default=True)
@click.option("--steps", type=int, default=5, show_default=True, help="Timed training steps per cell.")
def main(models: str, lengths: str, steps: int) -> None:
    sizes = [int(length) for length in lengths.split(",")]
    click.echo("| model | " + " | ".join(f"{n} ex/s" for n in sizes) + " | " +
               " | ".join(f"{n} / {sizes[0]}" for n in sizes[1:]) + " |")
    click.echo("|" + " --- |" * (1 + 2 * len(sizes) - 1))
    for name in models.split(","):
        speeds = [examples_per_second(name, n, steps) for n in sizes]
        click.echo(f"| {name} | " + " | ".join("out of memory" if s is None else f"{s:,.0f}" for s in speeds)
                   + " | " + " | ".join("" if s is None else f"{speeds[0] / s:.1f}x slower" for s in speeds[1:])
                   + " |")


if __name__ == "__main__":
    main()
