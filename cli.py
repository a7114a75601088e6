"""reviewflow: train and compare sentiment classifiers on review corpora too large for memory.

A thin entry point: each command parses its options and calls one library function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pipeline.errors import ReviewflowError

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
DIRECTORY = click.Path(file_okay=False, path_type=Path)
# Kept here rather than imported from `models`, so that `--help` needs no TensorFlow.
MODEL_NAMES = ["cnn", "rnn", "lstm", "cnn_lstm", "ffn", "hybrid", "hybrid_split"]


class ReviewflowGroup(click.Group):
    """Turns the library's errors into clean messages and exit code 1, never tracebacks."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReviewflowError as exc:
            raise click.ClickException(str(exc)) from exc
        except KeyboardInterrupt:
            raise click.Abort() from None


@click.group(cls=ReviewflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own start-up and log messages.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train and compare sentiment classifiers on review corpora too large for memory."""
    from pipeline import quiet

    quiet.import_tensorflow(verbose)
    ctx.obj = {"verbose": verbose}


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lines", "num_lines", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Number of reviews to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed; same seed, same bytes.")
@click.option("--mean-words", type=click.FloatRange(min=2), default=80.0, show_default=True,
              help="Average review length in words (long-tailed around it).")
@click.option("--bad-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of lines replaced by malformed ones, to exercise the rejects.")
@click.option("--sentiment-agreement", type=click.FloatRange(0.5, 1), default=0.75, show_default=True,
              help="Chance that a sentiment word matches the review's label (higher is easier).")
@click.option("--label-noise", type=click.FloatRange(0, 0.5), default=0.03, show_default=True,
              help="Share of labels flipped outright.")
def synth(out: Path, num_lines: int, seed: int, mean_words: float, bad_fraction: float,
          sentiment_agreement: float, label_noise: float) -> None:
    """Write an Amazon-like synthetic corpus OUT (.bz2, .gz or plain) in fastText format."""
    from pipeline import synthetic

    synthetic.write_corpus(out, num_lines, seed, mean_words, bad_fraction, sentiment_agreement, label_noise)
    click.echo(f"wrote {num_lines:,} lines to {out} ({out.stat().st_size:,} bytes)")


@cli.command()
@click.option("--train", type=EXISTING_FILE, required=True, help="Training corpus (.bz2, .gz or plain fastText).")
@click.option("--test", type=EXISTING_FILE, required=True, help="Test corpus (.bz2, .gz or plain fastText).")
@click.option("--out", type=DIRECTORY, required=True, help="Data directory to create.")
@click.option("--num-shards", type=click.IntRange(min=1), default=None,
              help="Shards per split. Default: one per ~128 MiB of text.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Share of the training file held out as the validation split.")
@click.option("--vocab-size", type=click.IntRange(min=3), default=8192, show_default=True,
              help="Vocabulary size, counting padding and [UNK] (TextVectorization max_tokens).")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True,
              help="Compression of the TFRecord shards.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the train/validation split.")
@click.option("--max-line-bytes", type=click.IntRange(min=16), default=1 << 20, show_default=True,
              help="Longer lines are rejected as line_too_long (keeps memory bounded).")
@click.option("--overwrite", is_flag=True, help="Replace a dataset already in --out.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
def shard(train, test, out, num_shards, val_fraction, vocab_size, compression, seed, max_line_bytes,
          overwrite, progress) -> None:
    """Parse fastText files lazily into sharded TFRecords with vocabulary and manifest."""
    from pipeline.shard_corpus import ShardSettings, shard_corpus

    settings = ShardSettings(train=train, test=test, out=out, num_shards=num_shards,
                             val_fraction=val_fraction, vocab_size=vocab_size, compression=compression,
                             seed=seed, overwrite=overwrite, max_line_bytes=max_line_bytes)
    manifest = shard_corpus(settings, progress=sys.stderr.isatty() if progress is None else progress)
    for name, split in manifest.splits.items():
        click.echo(f"{name:>10}: {split.num_examples:>10,} examples in {len(split.shards)} shards "
                   f"(negative {split.label_counts['0']:,}, positive {split.label_counts['1']:,})")
    for source in manifest.sources:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in source.rejected.items()) or "none"
        click.echo(f"{Path(source.path).name}: {source.lines_read:,} lines read, "
                   f"{source.written:,} written, rejected: {reasons}")
    click.echo(f"vocabulary: {manifest.vocabulary.size:,} ids "
               f"(covers {manifest.vocabulary.coverage:.1%} of training tokens)")
    click.echo(f"done in {manifest.seconds:.1f} s -> {out}")


def parse_hparams(ctx, param, values: tuple[str, ...]) -> dict:
    """`--param units=64` -> {"units": 64}; values are read as JSON where they parse."""
    import json

    hparams = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
        try:
            hparams[key] = json.loads(raw)
        except ValueError:
            hparams[key] = raw
        if isinstance(hparams[key], list):
            hparams[key] = tuple(hparams[key])
    return hparams


@cli.command()
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), required=True, help="Architecture to train.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Data directory written by `shard`.")
@click.option("--out", type=DIRECTORY, required=True, help="Run directory; re-running an interrupted run resumes it.")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True, help="Maximum epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Examples per batch and replica (the global batch is this times the replicas).")
@click.option("--max-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="Tokens per review: longer ones are cut, shorter ones padded at the end.")
@click.option("--optimizer", type=click.Choice(["rmsprop", "adam", "sgd"]), default=None,
              help="Default: the study's (RMSprop; Adam for the hybrids).")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Default: 0.001.")
@click.option("--patience", type=click.IntRange(min=0), default=3, show_default=True,
              help="Epochs without a better validation loss before stopping early.")
@click.option("--seed", type=int, default=None, help="Seed for weights and data order (deterministic order).")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
              help="Cap an epoch at this many batches (default: the whole train split).")
@click.option("--validation-steps", type=click.IntRange(min=1), default=None,
              help="Cap validation at this many batches (default: the whole validation split).")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on GPU (bfloat16 on CPU), float32 weights.")
@click.option("--jit-compile", is_flag=True, help="Compile the training step with XLA.")
@click.option("--strategy", type=click.Choice(["auto", "one-device", "mirrored"]), default="auto", show_default=True,
              help="auto: MirroredStrategy when several GPUs are visible, else one device.")
@click.option("--param", "hparams", multiple=True, callback=parse_hparams,
              help="Builder argument KEY=VALUE, e.g. --param units=64 (repeatable).")
@click.option("--overwrite", is_flag=True, help="Delete a complete or interrupted run in --out and train anew.")
@click.option("--quiet", is_flag=True, help="No summary or progress bar; only the final line.")
def fit(model_name, data, out, epochs, batch_size, max_len, optimizer, learning_rate, patience, seed,
        steps_per_epoch, validation_steps, mixed_precision, jit_compile, strategy, hparams, overwrite, quiet) -> None:
    """Train a model on a data directory, streaming; writes RUN/model.keras (raw text in)."""
    from models.training import FitSettings, fit as fit_model

    settings = FitSettings(model=model_name, data=data, out=out, epochs=epochs, batch_size=batch_size,
                           max_len=max_len, optimizer=optimizer, learning_rate=learning_rate, patience=patience,
                           seed=seed, steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                           mixed_precision=mixed_precision, jit_compile=jit_compile, strategy=strategy,
                           hparams=hparams, overwrite=overwrite)
    result = fit_model(settings, verbose=0 if quiet else "auto", log=click.echo)
    click.echo(f"best validation accuracy: {result.best_val_accuracy:.4f} after {result.epochs_run} epochs -> {out}")


def main() -> None:
    cli(prog_name="reviewflow")


if __name__ == "__main__":
    main()
