"""Training speed on an accelerator: examples/s of cnn, lstm, ngram_bag, transformer and pretrained, each in
float32 and with --mixed-precision and --jit-compile (alone and together), beside the input pipeline's own
examples/s with no model, so that one sees whether tf.data keeps the device fed.

One script, under 8 minutes on one GPU with the defaults: a synthetic corpus sharded once, then for each
cell a `fit` of 2 epochs of `--steps` steps; the second epoch's examples/s is the cell's (the first holds
tracing, XLA's compilation and the id cache's writing). `pretrained` fine-tunes a small BERT made here
(no download). On a CPU it runs too, as a smoke test (`--smoke`: a tiny corpus, 3 steps).

    .venv/bin/python benchmarks/gpu_bench.py [--smoke] [--models cnn,lstm,...] [--steps 40]
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

import tensorflow as tf  # noqa: E402

from models.run_dir import RunDir  # noqa: E402
from models.training import FitSettings, fit, make_plan, make_vectorizer, open_data  # noqa: E402
from pipeline import dataset, synthetic  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402

MODELS = ("cnn", "lstm", "ngram_bag", "transformer", "pretrained")
VARIANTS = (("float32", False, False), ("mixed precision", True, False), ("XLA", False, True),
            ("mixed precision + XLA", True, True))
TINY_BERT = dict(num_layers=4, num_heads=4, hidden_dim=256, intermediate_dim=1024, max_sequence_length=512)
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_data(root: Path, lines: int) -> Path:
    data = root / "data"
    if not (data / "manifest.json").exists():
        train = synthetic.write_corpus(root / "train.ft.txt", lines, 1, 80)
        test = synthetic.write_corpus(root / "test.ft.txt", max(200, lines // 20), 2, 80)
        shard_corpus(ShardSettings(train=train, test=test, out=data, num_shards=8))
    return data


def make_preset(root: Path, data: Path) -> Path:
    """A small random BERT over the corpus's words, saved as a KerasHub preset (what `--preset` reads)."""
    import keras
    import keras_hub

    path = root / "tiny_bert"
    if not (path / "config.json").exists():
        vocabulary = SPECIAL + (data / "vocab.txt").read_text(encoding="utf-8").split()[:30_000]
        keras.utils.set_random_seed(0)
        keras_hub.models.BertBackbone(vocabulary_size=len(vocabulary), **TINY_BERT).save_to_preset(str(path))
        keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(path))
    return path


def pipeline_speed(data_path: Path, steps: int) -> dict:
    """The input pipeline alone (shards -> TextVectorization -> batches of 64 at cnn's --max-len): examples/s."""
    data = open_data(data_path)
    settings = FitSettings(model="cnn", data=data_path, out=data_path.parent / "unused")
    plan = make_plan(settings, data)
    vectorizer = make_vectorizer(plan, settings, data)
    batches = dataset.make_dataset(data, "train", plan.global_batch_size, plan.max_len.max_len,
                                   vectorizer=vectorizer).repeat()
    iterator = iter(batches)
    next(iterator)
    started, examples = time.perf_counter(), 0
    for _ in range(max(steps, 20)):
        ids, _ = next(iterator)
        examples += int(ids.shape[0])
    return {"examples_per_s": examples / (time.perf_counter() - started), "max_len": plan.max_len.max_len,
            "batch": plan.global_batch_size}


def train_speed(data: Path, out: Path, name: str, mixed: bool, jit: bool, steps: int, preset: Path | None) -> dict:
    fit(FitSettings(model=name, data=data, out=out, epochs=2, steps_per_epoch=steps, validation_steps=1, seed=1,
                    mixed_precision=mixed, jit_compile=jit, preset=preset if name == "pretrained" else None,
                    overwrite=True, calibrate=False, patience=5), verbose=0)
    run = RunDir(out)
    return {"examples_per_s": run.history()[-1]["examples_per_second"], "max_len": run.config().settings["max_len"]}


def no_gpu_message() -> str:
    """Why TensorFlow sees no GPU, as far as it can say, and the fix: figures from a CPU are no GPU figures."""
    build = tf.sysconfig.get_build_info()
    wants = (f"CUDA {build['cuda_version']} and cuDNN {build['cudnn_version']}" if build.get("is_cuda_build")
             else "no CUDA (a CPU-only build)")
    return (f"TensorFlow {tf.__version__} sees no GPU; this build wants {wants}. A machine whose driver and "
            f"libraries are another CUDA (say 13) leaves it on the CPU. Install TensorFlow's own GPU build "
            f"with its CUDA libraries (.venv/bin/pip install -e '.[gpu]'), or run with --smoke for a CPU smoke "
            f"test.")


@click.command()
@click.option("--models", default=",".join(MODELS), show_default=True)
@click.option("--steps", type=int, default=40, show_default=True, help="Steps per epoch of each timed fit.")
@click.option("--lines", type=int, default=40_000, show_default=True, help="Synthetic training reviews.")
@click.option("--smoke", is_flag=True, help="A tiny corpus and 3 steps: that every cell runs, not how fast.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=ROOT / "bench-out" / "gpu",
              show_default=True)
def main(models: str, steps: int, lines: int, smoke: bool, out: Path) -> None:
    if smoke:
        steps, lines = 3, 2000
    started = time.perf_counter()
    devices = tf.config.list_physical_devices("GPU")
    click.echo(f"devices: {[device.name for device in devices] or 'CPU only'}", err=True)
    if not devices and not smoke:
        raise click.ClickException(no_gpu_message())
    root = out / ("smoke" if smoke else "full")
    data = make_data(root, lines)
    names = models.split(",")
    preset = make_preset(root, data) if "pretrained" in names else None
    results = {"devices": [device.name for device in devices], "pipeline": pipeline_speed(data, steps), "runs": []}
    click.echo(f"input pipeline alone: {results['pipeline']['examples_per_s']:,.0f} examples/s "
               f"(--max-len {results['pipeline']['max_len']}, batch {results['pipeline']['batch']})")
    click.echo("| model | --max-len | " + " | ".join(f"{label} ex/s" for label, _, _ in VARIANTS)
               + " | best / float32 | best / pipeline |")
    click.echo("| --- | --- | " + " | ".join("---" for _ in VARIANTS) + " | --- | --- |")
    for name in names:
        cells = []
        for label, mixed, jit in VARIANTS:
            try:
                cell = train_speed(data, root / "runs" / f"{name}-{label.replace(' ', '')}", name, mixed, jit,
                                   steps, preset)
            except Exception as exc:  # a cell that cannot run here (say, XLA without a kernel): its row says why
                cell = {"examples_per_s": None, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            cells.append({"variant": label, **cell})
            results["runs"].append({"model": name, **cells[-1]})
        speeds = [cell["examples_per_s"] for cell in cells]
        best = max((speed for speed in speeds if speed), default=None)
        shown = " | ".join(f"{speed:,.0f}" if speed else "failed" for speed in speeds)
        click.echo(f"| `{name}` | {cells[0].get('max_len', '?')} | {shown} | "
                   f"{best / speeds[0]:.2f}x | {best / results['pipeline']['examples_per_s']:.2f} |"
                   if best and speeds[0] else f"| `{name}` | ? | {shown} | - | - |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    click.echo(f"{time.perf_counter() - started:.0f} s in all -> {out / 'results.json'}", err=True)


if __name__ == "__main__":
    main()
