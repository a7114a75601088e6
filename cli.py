"""reviewflow: train and compare sentiment classifiers on review corpora too large for memory.

A thin entry point: each command parses its options and calls one library function.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from models import run_plan, zoo  # plain data: `--help` needs no TensorFlow
from models.zoo.spec import OPTIMIZERS
from pipeline import text_settings
from pipeline.formats import FORMATS as CORPUS_FORMATS
from pipeline.errors import ReviewflowError
from pipeline.labels import MIN_CLASS_EXAMPLES
from pipeline.rejects import MAX_REJECTS_KEPT, RAW_BYTES_KEPT, reasons_text

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
CORPUS_SOURCE = click.Path(exists=True, path_type=Path)   # a file, or a directory of class folders
DIRECTORY = click.Path(file_okay=False, path_type=Path)
EXISTING_DIRECTORY = click.Path(exists=True, file_okay=False, path_type=Path)
MODEL_NAMES = list(zoo.MODELS)


def lengths_help() -> str:
    """--max-len's defaults, from the specs: "cnn, rnn, ... 90% of reviews whole, up to 512; ..."."""
    groups = zoo.grouped("lengths")
    return "; ".join(f"{', '.join(names)} take{'s' * (len(names) == 1)} {policy.coverage:.0%} of reviews whole, "
                     f"up to {policy.cap}" for policy, names in groups.items())


def vocab_help() -> str:
    """--vocab-size's defaults, from the specs."""
    described = {None: f"all of it (shard keeps {text_settings.SHARD_VOCAB_SIZE} by default)"}
    groups = zoo.grouped("vocab_size", [spec for spec in zoo.SPECS if not spec.needs_preset])
    parts = [f"{', '.join(names)} {described.get(size, size)}" for size, names in groups.items()]
    presets = [spec.name for spec in zoo.SPECS if spec.needs_preset]
    return "; ".join(parts + [f"{', '.join(presets)} its checkpoint's own"] * bool(presets))


def describe_tf_error(exc) -> str:
    """The informative line of a TensorFlow error (its message opens with a stack of graph frames)."""
    lines = [line.strip() for line in exc.message.splitlines()
             if line.strip() and not line.strip().startswith(("File ", "[[", "Detected at node"))]
    reason = lines[-1] if lines else type(exc).__name__
    reason = reason.split("Original message: ")[-1]
    if "assertion failed: [" in reason:  # one of reviewflow's own checks in a pipeline (tf.debugging.Assert)
        reason = reason.split("assertion failed: [", 1)[1].rsplit("]", 1)[0].replace("\\'", "'")
    return reason[:400]


class ReviewflowGroup(click.Group):
    """Turns the library's errors into clean messages and exit code 1, never tracebacks."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ReviewflowError as exc:
            raise click.ClickException(str(exc)) from exc
        except BrokenPipeError:  # the reader went away (`reviewflow stats DIR | head`): stop writing, quietly
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the exit's flush must not fail too
            ctx.exit(141)  # as a process killed by SIGPIPE exits in a shell: 128 + 13
        except OSError as exc:  # disk full, permissions, a vanished file: say which file and why
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}. Nothing was marked complete; "
                                       "fix the cause and run the command again.") from exc
        except Exception as exc:
            tensorflow = sys.modules.get("tensorflow")
            if tensorflow is None or not isinstance(exc, tensorflow.errors.OpError):
                raise
            # TensorFlow's own I/O errors: a file too large for the disk, a damaged record.
            raise click.ClickException(f"{describe_tf_error(exc)}. Nothing was marked complete; fix "
                                       "the cause and run the command again.") from exc
        except KeyboardInterrupt:
            raise click.Abort() from None


@click.group(cls=ReviewflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own start-up and log messages.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Train and compare sentiment classifiers on review corpora too large for memory."""
    if any(flag in sys.argv for flag in ctx.help_option_names):
        return  # help needs no TensorFlow: keep it instant
    ctx.obj = {"verbose": verbose}
    if ctx.invoked_subcommand not in STARTS_TENSORFLOW_ITSELF:
        start_tensorflow(ctx)


# Commands that import TensorFlow later or never: data-service may restart itself with the loopback shim first;
# fit and tune start it once their --out is checked (a refusal there needs none); synth needs only numpy,
# compare the runs' files, stats of a data directory its manifest, and verify reads the shards itself.
STARTS_TENSORFLOW_ITSELF = ("data-service", "fit", "tune", "synth", "compare", "stats", "verify")


def start_tensorflow(ctx: click.Context, cluster_worker: bool = False) -> None:
    """Import TensorFlow quietly (unless --verbose); for a worker of `fit --strategy multi-worker`, create the
    cluster's strategy first (TensorFlow wants it before any op runs). Only there: created for every command
    wherever TF_CONFIG was set (a cluster machine's shell), it kept `predict` or `shard` waiting for the other
    workers to connect, for ever, deaf to SIGTERM."""
    from pipeline import quiet

    quiet.import_tensorflow(ctx.find_root().obj["verbose"], start_runtime=not cluster_worker)
    if cluster_worker:
        from models import multi_worker

        multi_worker.get_strategy()


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange without nan and inf: nan compares false with both bounds, so every range let it
    through (`--label-noise nan`, `--learning-rate nan`), and an unbounded side lets inf through."""

    def convert(self, value, param, ctx):
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{number} is not a finite number.", param, ctx)
        return number


# What numpy's and Keras's seeds take: a negative or larger one was a ValueError traceback.
SEED = click.IntRange(0, 2**32 - 1)


# Integrated gradients' most steps: the midpoint rule's error falls as 1/steps**2, so float32 rounding rules long
# before this; a typo of 10**8 would explain one review for hours.
MAX_EXPLAIN_STEPS = 10_000


def outside_reviewflow_dirs(ctx, param, value: Path | None, itself: bool = True) -> Path | None:
    """An output path for a command's own files, refused in a data or run directory (ownership.refuse_managed)."""
    if value is not None:
        from pipeline import ownership

        try:
            option = param.opts[0] if isinstance(param, click.Option) else param.human_readable_name
            ownership.refuse_managed(value, option, itself)
        except ReviewflowError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def not_inside_reviewflow_dirs(ctx, param, value: Path | None) -> Path | None:
    """A data or run directory to write (or a corpus file), refused inside another data or run directory."""
    return outside_reviewflow_dirs(ctx, param, value, itself=False)


@cli.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path), callback=not_inside_reviewflow_dirs)
@click.option("--lines", "num_lines", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Number of reviews to write.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Sampling seed; same seed, same bytes.")
@click.option("--mean-words", type=FiniteFloatRange(min=2), default=80.0, show_default=True,
              help="Average review length in words (long-tailed around it).")
@click.option("--bad-fraction", type=FiniteFloatRange(0, 1), default=0.0, show_default=True,
              help="Share of lines replaced by malformed ones, to exercise the rejects.")
@click.option("--sentiment-agreement", type=FiniteFloatRange(0.5, 1), default=None,
              help="Chance that a sentiment word matches the review's label (higher is easier). Default: 0.75; "
                   "for --classes, 0.9 (the lowest star's words are that negative, the highest's that positive).")
@click.option("--label-noise", type=FiniteFloatRange(0, 0.5), default=0.03, show_default=True,
              help="Share of labels flipped outright.")
@click.option("--style", type=click.Choice(["simple", "hard"]), default="simple", show_default=True,
              help="simple: sentiment in single words. hard: negation ('not great'), contrast where the clause "
                   "after 'but' decides, intensifiers; half the reviews need word order.")
@click.option("--positive-share", type=FiniteFloatRange(0, 1), default=0.5, show_default=True,
              help="Share of positive reviews before label noise (e.g. 0.72 for an imbalanced corpus).")
@click.option("--classes", "num_classes", type=click.IntRange(min=2, max=10), default=2, show_default=True,
              help="2: polarity (__label__1/2). 3 or more: star ratings __label__1..N, where neighbouring stars "
                   "are harder to tell apart than distant ones and label noise moves a rating by one star.")
def synth(out: Path, num_lines: int, seed: int, mean_words: float, bad_fraction: float,
          sentiment_agreement: float | None, label_noise: float, style: str, positive_share: float,
          num_classes: int) -> None:
    """Write an Amazon-like synthetic corpus OUT (.bz2, .gz or plain) in fastText format; never over a file."""
    from pipeline import synthetic

    if out.exists():  # it may be a real corpus (train.ft.txt.bz2): not ours to replace
        raise click.ClickException(f"{out} exists: synth never replaces a file, which may be a real corpus. "
                                   "Choose another name, or delete it yourself first.")
    if num_classes != 2 and (style != "simple" or positive_share != 0.5):
        raise click.UsageError("--classes takes the simple style and balanced classes; leave out --style and "
                               "--positive-share.")
    agreement = sentiment_agreement or (synthetic.SENTIMENT_AGREEMENT if num_classes == 2 else
                                        synthetic.STAR_SENTIMENT_AGREEMENT)
    synthetic.write_corpus(out, num_lines, seed, mean_words, bad_fraction, agreement, label_noise, style,
                           positive_share, num_classes)
    click.echo(f"wrote {num_lines:,} lines to {out} ({out.stat().st_size:,} bytes)")


def text_field_option(of: str):
    """--text-field, for a CSV/TSV/JSONL/Parquet source (`of`: " --file" where that option names it)."""
    return click.option("--text-field", default=None, help=f"CSV/TSV/JSONL/Parquet{of}: the text field. Default: "
                                                          "the first of text, review, content, ...")


def label_field_option(of: str):
    """--label-field, for a CSV/TSV/JSONL/Parquet source (`of` as for `text_field_option`)."""
    return click.option("--label-field", default=None, help=f"CSV/TSV/JSONL/Parquet{of}: the label field. Default: "
                                                           "the first of label, sentiment, rating, ...")


def parse_class_names(ctx, param, value: str | None) -> tuple[str, ...] | None:
    """`--classes neg,pos` -> ("neg", "pos")."""
    return tuple(name.strip() for name in value.split(",")) if value else None


# The class rule of `shard`, which `stats FILE` applies to show what shard would write.
classes_option = click.option(
    "--classes", "class_names", default=None, metavar="A,B,...", callback=parse_class_names,
    help="The classes to keep; other labels are rejected. Default: every label of the training file.")
min_class_examples_option = click.option(
    "--min-class-examples", type=click.IntRange(min=1), default=MIN_CLASS_EXAMPLES, show_default=True,
    help="A label seen fewer times in the training file is no class: its lines are rejected (bad_label).")


def split_key_value(ctx, param, value: str) -> tuple[str, str]:
    """`"units=64"` -> ("units", "64"); anything without a key and "=" is a usage error."""
    key, sep, raw = value.partition("=")
    if not sep or not key or key.startswith("-"):
        raise click.BadParameter(f"{value!r} is not KEY=VALUE", ctx, param)
    return key, raw


def parse_beam_options(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--beam-option runner=DirectRunner` -> ("--runner=DirectRunner",), as Beam's PipelineOptions take them."""
    return tuple("--{}={}".format(*split_key_value(ctx, param, value)) for value in values)


@cli.command()
@click.option("--train", type=CORPUS_SOURCE, required=True,
              help="Training corpus: fastText, CSV, TSV, JSON lines or Parquet (.bz2/.gz compressed or plain), or "
                   "a directory of class folders (aclImdb/train: pos/, neg/, one review per file).")
@click.option("--test", type=CORPUS_SOURCE, default=None,
              help="Test corpus, in any format --train takes. Or --test-fraction, for a corpus of one file.")
@click.option("--test-fraction", type=FiniteFloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Instead of --test: the share of the training file held out as the test split (by a hash of "
                   "each review, as --val-fraction: duplicates stay in one split); --val-fraction is then the "
                   "share of the rest.")
@click.option("--out", type=DIRECTORY, required=True, callback=not_inside_reviewflow_dirs,
              help="Data directory to create.")
@click.option("--num-shards", type=click.IntRange(min=1), default=None,
              help="Shards per split. Default: one per ~128 MiB of text.")
@click.option("--val-fraction", type=FiniteFloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Share of the training file held out as the validation split (of what --test-fraction leaves).")
@click.option("--vocab-size", type=click.IntRange(min=3), default=text_settings.SHARD_VOCAB_SIZE, show_default=True,
              help="Vocabulary size, counting padding and [UNK]: the most frequent training words. Each model "
                   f"takes what it uses of it (fit --vocab-size: {vocab_help()}).")
@click.option("--compression", type=click.Choice(["none", "gzip"]), default="none", show_default=True,
              help="Compression of the TFRecord shards.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the train/validation split.")
@click.option("--max-line-bytes", type=click.IntRange(min=16), default=1 << 20, show_default=True,
              help="Longer lines (fastText), and records, rows or fields (CSV, TSV, JSON lines, Parquet), are "
                   "rejected as line_too_long or record_too_long, before they are parsed: memory stays bounded.")
@click.option("--overwrite", is_flag=True,
              help="Replace a dataset already in --out: only the files shard wrote there are deleted, and a "
                   "directory holding anything else is refused, untouched.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when on a terminal).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Training workers that will read this directory (fit --strategy multi-worker): each reads "
                   "whole shards, so a split with fewer shards than workers gets a warning.")
@click.option("--runner", type=click.Choice(["local", "beam"]), default="local", show_default=True,
              help="local: this process, in flat memory. beam: the same job as an Apache Beam pipeline "
                   "(pip install -e '.[beam]'); Beam's in-process FnApiRunner unless --beam-option runner=... "
                   "says otherwise.")
@click.option("--beam-option", "beam_options", multiple=True, metavar="KEY=VALUE", callback=parse_beam_options,
              help="Beam pipeline option, e.g. --beam-option runner=FlinkRunner (repeatable; --runner beam only).")
@click.option("--format", "source_format", type=click.Choice(CORPUS_FORMATS), default=None,
              help="Format of both sources. Default: a directory is class folders; a file's name says (.csv, .tsv, "
                   ".jsonl, .parquet; else fastText).")
@text_field_option("")
@label_field_option("")
@classes_option
@click.option("--positive-class", default=None,
              help="Two classes: the one whose probability models output. Default: the later in order (2, pos).")
@min_class_examples_option
@click.option("--rejects-kept", type=click.IntRange(min=0), default=MAX_REJECTS_KEPT, show_default=True,
              help=f"rejects.jsonl keeps the first N rejects (each cut to {RAW_BYTES_KEPT >> 10} KiB); later ones are "
                   "only counted (the manifest counts every one, by source and reason).")
def shard(train, test, test_fraction, out, num_shards, val_fraction, vocab_size, compression, seed, max_line_bytes,
          overwrite, progress, workers, runner, beam_options, source_format, text_field, label_field, class_names,
          positive_class, min_class_examples, rejects_kept) -> None:
    """Parse review files lazily into sharded TFRecords with vocabulary and manifest."""
    from pipeline import quiet
    from pipeline.manifest import summary_lines
    from pipeline.shard.job import shard_corpus
    from pipeline.shard.plan import ShardSettings, class_warnings

    if runner == "beam" and not click.get_current_context().obj["verbose"]:
        quiet.quiet_beam()
    settings = ShardSettings(train=train, test=test, test_fraction=test_fraction or 0.0, out=out,
                             num_shards=num_shards,
                             val_fraction=val_fraction, vocab_size=vocab_size, compression=compression,
                             seed=seed, overwrite=overwrite, max_line_bytes=max_line_bytes,
                             runner=runner, beam_options=beam_options, format=source_format,
                             text_field=text_field, label_field=label_field,
                             classes=class_names,
                             positive_class=positive_class, min_class_examples=min_class_examples,
                             max_rejects_kept=rejects_kept)
    manifest = shard_corpus(settings, progress=sys.stderr.isatty() if progress is None else progress)
    echo_lines(summary_lines(manifest, out))
    for warning in class_warnings(manifest):
        click.echo(warning, err=True)
    if manifest.splits["validation"].num_examples == 0:
        click.echo("warning: the validation split is empty (--val-fraction too small); fit and tune need one: "
                   "shard again with --val-fraction 0.2 (the default) or 0.1.", err=True)
    if manifest.splits["test"].num_examples == 0:  # a test file of its own has a valid review, or shard stopped
        click.echo(f"warning: the test split is empty (--test-fraction {test_fraction} held out none of the "
                   "file's reviews); evaluate needs one: shard again with a larger --test-fraction (0.2, say).",
                   err=True)
    for name, split in manifest.splits.items():
        if len(split.shards) < workers:
            click.echo(f"warning: {name} has {len(split.shards)} shard(s) for {workers} workers; "
                       f"re-shard with --num-shards {workers} or more to train on all of them.", err=True)


def parse_hparams(ctx, param, values: tuple[str, ...]) -> dict:
    """`--param units=64` -> {"units": 64}; values are read as JSON where they parse."""
    import json

    hparams = {}
    for value in values:
        key, raw = split_key_value(ctx, param, value)
        try:
            hparams[key] = json.loads(raw)
        except ValueError:
            hparams[key] = raw
        if isinstance(hparams[key], list):
            hparams[key] = tuple(hparams[key])
    return hparams


# What a user of `tune` or `study` does instead of --strategy multi-worker.
ACROSS_WORKERS_INSTEAD = {
    "tune": "Tune on one machine, then train its best configuration (trials.csv's first row) across the workers "
            "with `fit --strategy multi-worker`.",
    "study": "Train each model across the workers with `fit --strategy multi-worker`, then `compare` or `report` "
             "the runs.",
}


def multi_worker_for_fit_alone(ctx: click.Context, param, value: str) -> str:
    """--strategy multi-worker is `fit`'s alone: every worker of a cluster runs the command whole, so each would
    run the whole search or study into the same --out (the second refused by its lock, the first left waiting)."""
    if value == "multi-worker" and ctx.command.name != "fit":
        raise click.BadParameter(f"multi-worker is for `fit` (every worker would run the whole {ctx.command.name} "
                                 f"into the same --out). {ACROSS_WORKERS_INSTEAD[ctx.command.name]}",
                                 ctx=ctx, param=param)
    return value


# Training options shared by `fit`, `tune` and `study`, defined once.
TRAINING_OPTIONS = [
    click.option("--data", type=EXISTING_DIRECTORY, required=True, help="Data directory written by `shard`."),
    click.option("--epochs", type=click.IntRange(min=1), default=None,
                 help=f"Maximum epochs. Default: the model's ({zoo.defaults_text('epochs')})."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None,
                 help="Examples per batch and replica (the global batch is this times the replicas). Default: the "
                      f"model's ({zoo.defaults_text('batch_size')}), lowered for a small corpus so that an epoch "
                      f"has {run_plan.MIN_STEPS_PER_EPOCH} steps or more."),
    click.option("--max-len", type=click.IntRange(min=1), default=None,
                 help="Tokens per review: longer ones are cut, shorter ones padded at the end. Default: chosen "
                      "from the train split's lengths, counted in the model's own units (shard records the "
                      f"tokens; a preset's word pieces are counted on a sample): {lengths_help()}. The "
                      "reference studies' value is --max-len 128."),
    click.option("--truncate", type=click.Choice(text_settings.TRUNCATIONS), default=None,
                 help="Which tokens of a longer review are kept: the first, the last, or the first quarter "
                      f"and the last three quarters (Sun et al. 2019). Default: {text_settings.DEFAULT_TRUNCATE}."),
    click.option("--vocab-size", type=click.IntRange(min=3), default=None,
                 help="Vocabulary ids the model uses: the most frequent words of the shard's vocab.txt (padding "
                      f"and [UNK] count as two). Default: the model's ({vocab_help()})."),
    click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None,
                 help=f"Default: the model's ({zoo.defaults_text('optimizer')}). row_adagrad and lazy_adam "
                      "update only the embedding rows a batch uses; adamw decays weights decoupled from the gradient."),
    click.option("--learning-rate", type=FiniteFloatRange(min=0, min_open=True), default=None,
                 help=f"Default: the model's ({zoo.defaults_text('learning_rate', '{:g}'.format)})."),
    click.option("--patience", type=click.IntRange(min=0), default=3, show_default=True,
                 help="Epochs without a better validation loss before stopping early."),
    click.option("--seed", type=SEED, default=None, help="Seed for weights and data order (deterministic order)."),
    click.option("--steps-per-epoch", type=click.IntRange(min=1), default=None,
                 help="Cap an epoch at this many batches (default: the whole train split)."),
    click.option("--validation-steps", type=click.IntRange(min=1), default=None,
                 help="Cap validation at this many batches (default: the whole validation split). A validation "
                      f"batch holds up to {run_plan.VALIDATION_BATCH_REVIEWS} reviews: more than a training batch, "
                      "as it runs no backward pass."),
    click.option("--validation-sample", type=click.IntRange(min=0), default=None,
                 help="Score at most this many validation reviews each epoch: every k-th review of a larger split, "
                      "the same ones each epoch, also what calibration fits on. 0 scores the whole split. "
                      f"Default: {run_plan.VALIDATION_SAMPLE_REVIEWS}."),
    click.option("--mixed-precision", is_flag=True,
                 help="float16 compute on GPU (bfloat16 on CPU), float32 weights."),
    click.option("--jit-compile/--no-jit-compile", default=None,
                 help="Compile the training step with XLA. Default: off, but for "
                      + ", ".join(f"{spec.name} in runs sure to train {spec.xla_from_steps}+ steps"
                                  for spec in zoo.SPECS if spec.xla_from_steps)
                      + ", which repay a compile per batch width."),
    click.option("--strategy", type=click.Choice(["auto", "one-device", "mirrored", "multi-worker"]),
                 default="auto", show_default=True, callback=multi_worker_for_fit_alone,
                 help="auto: MirroredStrategy when several GPUs are visible, else one device; multi-worker "
                      "(`fit` only): MultiWorkerMirroredStrategy over the machines in TF_CONFIG (only the chief "
                      "writes RUN)."),
    click.option("--cache/--no-cache", default=True, show_default=True,
                 help="Cache token ids on disk (RUN/cache, 4 bytes a token, padding left out) during the "
                      "first epoch, so later epochs skip parsing and vectorizing; removed when fit ends."),
    click.option("--length-buckets/--no-length-buckets", default=True, show_default=True,
                 help="Batch reviews of similar length together and pad each batch to the smallest of a few widths "
                      "that holds its longest review, not to --max-len: the same model, trained faster. "
                      "--no-length-buckets pads every batch to --max-len."),
    click.option("--data-service", default=None, metavar="grpc://HOST:PORT",
                 help="Run the input pipeline (read, parse, vectorize, batch) on a tf.data service: the "
                      "dispatcher of `reviewflow data-service`; each shard file goes to one of its workers."),
    click.option("--embeddings", type=EXISTING_FILE, default=None,
                 help="Pretrained word vectors to start the model's embedding(s) from: fastText .vec or GloVe .txt, "
                      "plain, .gz or .bz2; streamed once, only the vocabulary's words kept. Sets the model's "
                      "embedding_dim to the vectors' unless --param embedding_dim is given."),
    click.option("--freeze-embeddings", is_flag=True, help="Keep the pretrained vectors fixed (with --embeddings)."),
    click.option("--preset", type=click.Path(path_type=Path), default=None,
                 help="--model pretrained: a local checkpoint directory, never downloaded: a KerasHub preset, or a "
                      "Hugging Face BERT-family checkpoint (config.json, model.safetensors, vocab.txt or "
                      "tokenizer.json). Other models ignore it (so study can mix them)."),
    click.option("--warmup-share", type=FiniteFloatRange(0, 1, max_open=True), default=None,
                 help="Share of all training steps over which the learning rate warms up linearly, then decays "
                      f"linearly to 0. Default: the model's ({zoo.defaults_text('warmup_share', '{:g}'.format)})."),
    click.option("--param", "hparams", multiple=True, callback=parse_hparams,
                 help="Builder argument KEY=VALUE, e.g. --param units=64 (repeatable)."),
    click.option("--calibrate/--no-calibrate", default=True, show_default=True,
                 help="Fit a temperature on the validation split after training, so that probabilities mean "
                      "what they say (temperature scaling; no prediction changes class). It is part of "
                      "model.keras; config.json records it with the validation ECE before and after."),
    click.option("--overwrite", is_flag=True,
                 help="Delete a complete or interrupted run in --out and train anew: only what reviewflow wrote "
                      "there, after every input is checked; a directory holding anything else is refused."),
]


# Search options shared by `tune` and `study --tune`.
TUNING_OPTIONS = [
    click.option("--tuner", type=click.Choice(["hyperband", "random", "bayesian"]), default="hyperband",
                 show_default=True, help="KerasTuner's search: Hyperband, random search or Bayesian optimization."),
    click.option("--max-trials", type=click.IntRange(min=1), default=10, show_default=True,
                 help="Most configurations tried."),
    click.option("--max-epochs", type=click.IntRange(min=1), default=4, show_default=True,
                 help="Most epochs a trial trains (Hyperband gives promising trials more, up to this)."),
]


def tuning_options(command):
    for option in reversed(TUNING_OPTIONS):
        command = option(command)
    return command


def training_options(command):
    for option in reversed(TRAINING_OPTIONS):
        command = option(command)
    return command


def fit_settings(model_name: str, out: Path, options: dict):
    from models.training import FitSettings

    return FitSettings(model=model_name, out=out, **options)


def start_after_checking_run_out(out: Path, options: dict) -> None:
    """fit's and tune's RUN: a user's folder, or a complete run without --overwrite, refused at once; then
    TensorFlow started. (Under multi-worker the chief alone checks, in models/training.py.)"""
    from models.run_dir import RunDir

    cluster_worker = options["strategy"] == "multi-worker"
    if not cluster_worker:
        RunDir(out).refuse_unusable(options["overwrite"])
    start_tensorflow(click.get_current_context(), cluster_worker)


@cli.command()
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), required=True, help="Architecture to train.")
@click.option("--out", type=DIRECTORY, required=True, callback=not_inside_reviewflow_dirs,
              help="Run directory; re-running an interrupted run resumes it.")
@training_options
@click.option("--quiet", is_flag=True, help="No summary or progress bar; only the final line.")
def fit(model_name, out, quiet, **options) -> None:
    """Train a model on a data directory, streaming; writes RUN/model.keras (raw text in)."""
    start_after_checking_run_out(out, options)
    from models.training import fit as fit_model

    result = fit_model(fit_settings(model_name, out, options), verbose=progress_verbosity(quiet), log=click.echo)
    echo_result(result, out)


def progress_verbosity(quiet: bool) -> int:
    """Keras's `verbose` for fit: nothing with --quiet; a live bar on a terminal; else one line an epoch.

    Keras draws its bar in place wherever it runs on Linux: into a log file or a pipe that is every redraw,
    backspaces and colour codes included, several times a second for the whole run.
    """
    if quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def echo_result(result, out: Path) -> None:
    """fit's and tune's last line: the kept epoch's validation accuracy (early stopping may keep an earlier one);
    on stderr, a warning where that epoch learnt nothing. Said by the process that wrote the run (of a
    multi-worker run, the chief)."""
    if not result.written:
        return
    click.echo(f"best validation accuracy: {result.best_val_accuracy:.4f} (epoch {result.best_epoch} of "
               f"{result.epochs_run}) -> {out}")
    if result.warning:
        click.echo(result.warning, err=True)


@cli.command()
@click.option("--model", "model_name", type=click.Choice(MODEL_NAMES), required=True, help="Architecture to tune.")
@click.option("--out", type=DIRECTORY, required=True, callback=not_inside_reviewflow_dirs,
              help="Run directory: the search (RUN/tuner, resumed if killed), trials.csv/json, then the best "
                   "configuration's run.")
@training_options
@tuning_options
def tune(model_name, out, tuner, max_trials, max_epochs, **options) -> None:
    """Search a model's hyperparameters (validation loss), then train the best as an ordinary RUN."""
    start_after_checking_run_out(out, options)
    from models import tuning

    settings = tuning.TuneSettings(fit_settings(model_name, out, options), tuner, max_trials, max_epochs)
    result, rows = tuning.tune(settings, log=click.echo)
    click.echo("\n" + tuning.as_text(rows))
    click.echo(f"-> {out / tuning.TRIALS_CSV}, {out / tuning.TRIALS_JSON}")
    echo_result(result, out)


RUN_DIR = EXISTING_DIRECTORY


def echo_lines(lines: list[str]) -> None:
    for line in lines:
        click.echo(line)


@cli.command()
@click.argument("run", type=RUN_DIR)
@click.option("--data", type=EXISTING_DIRECTORY, default=None,
              help="Data directory of the run's classes: the one it was trained on, or a labeled corpus sharded on "
                   "its own (the model scores raw texts with its own vocabulary).")
@click.option("--split", type=click.Choice(["test", "validation", "train"]), default=None,
              help="--data's split to evaluate on.  [default: test]")
@click.option("--file", "file_path", type=CORPUS_SOURCE, default=None,
              help="Instead of --data: a labeled file (fastText, CSV, TSV, JSON lines or Parquet; plain, .gz or "
                   ".bz2) or a directory of class folders, read as shard reads it, no shards made. Unreadable "
                   "records and labels outside the run's classes are counted, never scored.")
@click.option("--format", "source_format", type=click.Choice(CORPUS_FORMATS), default=None,
              help="Format of --file. Default: a directory is class folders; a file's name says (.csv, .tsv, "
                   ".jsonl, .parquet; else fastText).")
@text_field_option(" --file")
@label_field_option(" --file")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Reviews per prediction batch. Default: 4096 (pretrained 128, transformer 256: attention's memory).")
@click.option("--errors", type=click.IntRange(min=0), default=20, show_default=True,
              help="Keep the N most confident false positives and N false negatives in RUN/errors.jsonl.")
def evaluate(run, data, split, file_path, source_format, text_field, label_field, batch_size, errors) -> None:
    """Measure a trained RUN on a split of --data, or on a labeled --file: metrics.json (with accuracy by
    length, calibration, the F1-best threshold), errors.jsonl, and roc, confusion, reliability and length plots."""
    from models import evaluation
    from models.run_dir import METRICS_FILE
    from pipeline.data_dir import DataDir
    from pipeline.formats import FormatSettings

    if (data is None) == (file_path is None):
        raise click.UsageError("give --data DIR (a split of a data directory) or --file FILE (a labeled file)")
    file_only = [option for option, given in (("--format", source_format), ("--text-field", text_field),
                                              ("--label-field", label_field)) if given is not None]
    if data is not None and file_only:
        raise click.UsageError(f"{', '.join(file_only)}: for --file (a data directory records its own fields)")
    if file_path is not None and split is not None:
        raise click.UsageError("--split: for --data (a file is evaluated whole)")
    if file_path is not None:
        settings = FormatSettings(format=source_format, text_field=text_field, label_field=label_field)
        metrics = evaluation.evaluate_file(run, file_path, settings, batch_size, errors)
    else:  # the shards it reads are hashed first (about 1 s per GB): a changed record must not become a metric
        split = split or "test"
        metrics = evaluation.evaluate(run, DataDir.open(data, hashes=(split,)), split, batch_size, errors)
    echo_lines(evaluation.summary_lines(metrics))
    if metrics.get("rejected"):
        click.echo(f"warning: {sum(metrics['rejected'].values()):,} record(s) of {file_path} were not evaluated "
                   f"({reasons_text(metrics['rejected'])}); metrics.json counts them under `rejected`.", err=True)
    click.echo(f"-> {run / METRICS_FILE}")


@cli.command()
@click.argument("run", type=RUN_DIR)
@click.argument("texts", nargs=-1)
@click.option("--file", "file_path", type=CORPUS_SOURCE, default=None,
              help="Reviews: one per line (plain, .gz or .bz2; fastText labels are ignored), or a CSV, TSV, JSON "
                   "lines or Parquet file's text field, or a directory of reviews, one per file (in class folders "
                   "or not; each line then starts with the file's path in it; jsonl: \"file\"). A record that "
                   "cannot be read (no text field, nested too deep, over 1 MiB, not UTF-8) gets the line "
                   "`rejected:REASON<TAB>nan` (jsonl: {\"rejected\": REASON}) in its place.")
@click.option("--input-format", type=click.Choice(CORPUS_FORMATS), default=None,
              help="Format of --file. Default: a directory is reviews one per file (class folders or not); a "
                   "file's name says (.csv, .tsv, .jsonl, .parquet; else lines).")
@text_field_option(" --file")
@click.option("--format", "output_format", type=click.Choice(["tsv", "jsonl"]), default="tsv", show_default=True,
              help="tsv: label<TAB>p_positive (N classes: the top label's probability); jsonl: one JSON object "
                   "per line, with every class's probability for N classes.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Reviews per prediction batch. Default: 1024 (pretrained 128, transformer 256: attention's memory).")
@click.option("--explain", is_flag=True,
              help="Also say which words made each prediction: tsv adds the top words for and against the label; "
                   "jsonl adds every word with its characters in the review and its weight. Exact for linear and "
                   "ngram_bag; integrated gradients for the others (one review at a time: slower).")
@click.option("--explain-class", default=None, metavar="CLASS",
              help="With --explain: explain this class (a name or label of the run's classes), not the predicted one.")
@click.option("--steps", "explain_steps", type=click.IntRange(1, MAX_EXPLAIN_STEPS), default=None,
              help="With --explain: integrated gradients' steps. Default: 50, as Captum's (more: a smaller "
                   "completeness error, which jsonl reports with each explanation).")
def predict(run, texts, file_path, input_format, text_field, output_format, batch_size, explain, explain_class,
            explain_steps) -> None:
    """Score reviews given as TEXTS, in --file, or on standard input: one line out per review in."""
    import collections
    import itertools
    import json

    from models.evaluation import NotUtf8Lines, named_texts_of_file, predict as predict_texts, texts_of_stream
    from pipeline import live

    if texts and file_path:
        raise click.UsageError("give reviews as arguments or with --file, not both")
    for given, option in ((explain_class, "--explain-class"), (explain_steps, "--steps")):
        if given is not None and not explain:  # silently ignored, it would look as if it had been used
            raise click.UsageError(f"{option} needs --explain")
    # Standard input may be a stream still being written: what has come is answered whenever it pauses. Its
    # lines are read as --file's plain lines are (texts_of_stream).
    not_utf8 = NotUtf8Lines()
    names = itertools.repeat(None)
    if file_path:
        records = named_texts_of_file(file_path, input_format, text_field, not_utf8)
        if file_path.is_dir():  # its reviews are its files: each line names its file, from the same walk
            records, named = itertools.tee(records)  # (names are taken a batch behind the reviews)
            names = (name for name, _ in named)
        inputs = (text for _, text in records)
    else:
        inputs = arguments_as_utf8(texts, not_utf8) or live.with_pauses(texts_of_stream(sys.stdin.buffer, not_utf8))
    explainer = None
    if explain:
        from models.explain import Explainer

        explainer = Explainer.for_run(run, explain_steps)
    # Each review beside its prediction, read once (a file is streamed; tee holds one batch of reviews).
    mine, theirs = itertools.tee(inputs)
    rejected = collections.Counter()
    reviews = (item for item in mine if item is not live.PAUSE)
    for item, name, prediction in zip(reviews, names, predict_texts(run, theirs, batch_size)):
        named_json, named_tsv = ({"file": name}, f"{name}\t") if name is not None else ({}, "")
        if prediction.rejected is not None:  # a record of --file that could not be read: its line says why
            rejected[prediction.rejected] += 1
            click.echo(json.dumps({**named_json, "rejected": prediction.rejected}) if output_format == "jsonl"
                       else f"{named_tsv}rejected:{prediction.rejected}\tnan")
            continue
        explanation = explainer.explain(item, explain_class) if explainer else None
        if output_format == "jsonl":
            extra = {"explanation": explanation.to_json()} if explanation else {}
            click.echo(json.dumps({**named_json, **prediction_json(prediction), **extra}))
        else:
            click.echo(named_tsv + prediction_tsv(prediction) + (f"\t{explanation.summary()}" if explanation else ""))
    warn_rejected(rejected, file_path)
    if texts:
        warn_not_utf8_arguments(not_utf8)
    else:
        warn_not_utf8(not_utf8, file_path)


def arguments_as_utf8(texts, not_utf8) -> list[str]:
    """Reviews given as arguments, as a file's lines are read: a terminal or script in another encoding passes
    bytes that are not UTF-8 (Python keeps them as lone surrogates, which TensorFlow refuses with a traceback);
    they are replaced with U+FFFD and counted in `not_utf8`."""
    import os

    return [not_utf8.decode(os.fsencode(text), number, cut=False) for number, text in enumerate(texts, start=1)]


def prediction_json(prediction) -> dict:
    """`predict --format jsonl`'s object: the label, and P(positive) or (N classes) every class's probability."""
    if prediction.probabilities is None:
        return {"label": prediction.label, "p_positive": round(prediction.p_positive, 6)}
    return {"label": prediction.label, "probability": round(prediction.probability, 6),
            "probabilities": {label: round(p, 6) for label, p in prediction.probabilities.items()}}


def prediction_tsv(prediction) -> str:
    """`predict`'s line: label<TAB>P(positive), or (N classes) the label's probability."""
    score = prediction.p_positive if prediction.probabilities is None else prediction.probability
    return f"{prediction.label}\t{score:.6f}"


def warn_not_utf8(not_utf8, file_path) -> None:
    if not_utf8.count:
        source = file_path or "standard input"
        click.echo(f"warning: {not_utf8.count:,} line(s) of {source} are not UTF-8 (the first: line "
                   f"{not_utf8.first_line:,}); they were scored with U+FFFD in place of their bad bytes. Is it the "
                   "file you meant, and not a binary one? Text in another encoding: convert it first (`iconv -f "
                   "latin1 -t utf-8`).", err=True)


def warn_not_utf8_arguments(not_utf8) -> None:
    if not_utf8.count:
        click.echo(f"warning: {not_utf8.count:,} of the reviews given as arguments are not UTF-8 (the first: review "
                   f"{not_utf8.first_line:,}); they were scored with U+FFFD in place of their bad bytes. Set a UTF-8 "
                   "locale (LANG=C.UTF-8) in the terminal or script that passes them, or give them in a --file.",
                   err=True)


def warn_rejected(rejected, file_path) -> None:
    if rejected:
        click.echo(f"warning: {sum(rejected.values()):,} record(s) of {file_path} could not be read "
                   f"({reasons_text(dict(sorted(rejected.items())))}); "
                   "their output lines say `rejected` and why, in their places.", err=True)


def echo_comparison(rows: list[dict]) -> None:
    """compare's and study's table, and on stderr the warning where the runs scored different reviews."""
    from models import comparison

    click.echo(comparison.as_text(rows))
    for warning in (comparison.mixed_scoring(rows), comparison.not_evaluated(rows)):
        if warning:
            click.echo(warning, err=True)


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=RUN_DIR)
@click.option("--out", type=DIRECTORY, default=None, callback=outside_reviewflow_dirs,
              help="Also write comparison.md, .csv and .png here.")
def compare(runs, out) -> None:
    """Put trained RUNS side by side, best test accuracy first."""
    from models import comparison

    given = {}
    for run in runs:  # a run given twice (a glob, a typo) is one row: the first spelling of it
        given.setdefault(run.resolve(), run)
    rows = comparison.compare(list(given.values()))
    echo_comparison(rows)
    if out:
        comparison.write_comparison(rows, out)
        click.echo(f"-> {out}/comparison.md, comparison.csv, comparison.png")


@cli.command()
@click.option("--out", type=DIRECTORY, required=True, callback=outside_reviewflow_dirs,
              help="Directory of runs, one per model, and the comparison.")
@click.option("--models", "model_list", default=",".join(MODEL_NAMES), show_default=True,
              help="Comma-separated models to fit, evaluate and compare.")
@training_options
@click.option("--tune", "tune_first", is_flag=True, help="Tune each model (see `tune`) before the comparison.")
@tuning_options
@click.option("--report/--no-report", "with_report", default=True, show_default=True,
              help="Write OUT/report.html at the end: the whole study on one page.")
def study(out, model_list, tune_first, tuner, max_trials, max_epochs, with_report, **options) -> None:
    """The reference studies in one command: fit (or tune), evaluate and compare several models."""
    from models import study as study_lib, training

    names = list(dict.fromkeys(name.strip() for name in model_list.split(",") if name.strip()))  # each once
    unknown = sorted(set(names) - set(MODEL_NAMES))
    if unknown or not names:
        said = f"unknown model(s) {unknown}" if unknown else "no model given"
        raise click.BadParameter(f"{said}; choose from {MODEL_NAMES}", param_hint="--models")
    tune = dict(tuner=tuner, max_trials=max_trials, max_epochs=max_epochs) if tune_first else None
    data = training.open_data(options["data"])  # once, for every run, evaluation and the report
    rows = study_lib.study(fit_settings(names[0], out, options), names, log=click.echo, tune=tune, data=data)
    click.echo()
    echo_comparison(rows)
    click.echo(f"-> {out}/comparison.md, comparison.csv, comparison.png")
    if with_report:
        from models.report import write_report

        path = write_report([out / name for name in names], out, data, rows=rows)
        click.echo(f"-> {path}")
    failed = [row["model"] for row in rows if row["error"]]
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(rows)} models failed ({', '.join(failed)}); "
                                   "their errors are in the table above.")


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=RUN_DIR)
@click.option("--data", type=EXISTING_DIRECTORY, default=None,
              help="Data directory to describe too (splits, rejects, vocabulary, lengths: one streamed pass).")
@click.option("--out", type=DIRECTORY, required=True, callback=outside_reviewflow_dirs,
              help="Directory for report.html (and the comparison files).")
@click.option("--errors", type=click.IntRange(min=0), default=20, show_default=True,
              help="Most confident mistakes shown per run and kind (of those `evaluate` kept).")
@click.option("--explain", "explained", type=click.IntRange(min=0), default=10, show_default=True,
              help="Mistakes per run whose words are shaded by their part in the prediction (predict --explain's "
                   "attributions); each costs a fraction of a second, the page says how long. 0: none.")
def report(runs, data, out, errors, explained) -> None:
    """One self-contained HTML page of RUNS: data, comparison, curves, ROC, calibration, length, mistakes."""
    from models.report import write_report
    from pipeline.data_dir import DataDir

    path = write_report(list(runs), out, DataDir.open(data) if data else None, errors, explained=explained)
    click.echo(f"-> {path}")


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              callback=outside_reviewflow_dirs,
              help="Write a review-length histogram PNG here.")
@click.option("--format", "source_format", type=click.Choice(CORPUS_FORMATS), default=None,
              help="A raw source's format. Default: a directory without shard's files is class folders; a file's "
                   "name says (.csv, .tsv, .jsonl, .parquet; else fastText).")
@text_field_option(" (a raw file)")
@label_field_option(" (a raw file)")
@classes_option
@min_class_examples_option
def stats(path, plot_path, source_format, text_field, label_field, class_names, min_class_examples) -> None:
    """Corpus statistics of a data directory or a raw corpus (any format shard reads): balance, lengths,
    coverage."""
    from models import run_plan
    from pipeline import stats as stats_lib
    from pipeline.formats import FormatSettings

    source = stats_lib.open_source(path)
    read_as = FormatSettings(source_format, text_field, label_field)
    class_rule = stats_lib.ClassRule(class_names, min_class_examples)
    if not isinstance(source, Path) and (read_as != FormatSettings() or class_rule != stats_lib.ClassRule()):
        raise click.UsageError("--format, --text-field, --label-field, --classes and --min-class-examples are for "
                               "a raw file; a data directory's manifest says how its files were read.")
    if not stats_lib.reads_only_the_manifest(source):  # a raw file's reviews, or an old directory's, are read
        start_tensorflow(click.get_current_context())
    result = stats_lib.corpus_stats(source, format_settings=read_as, class_rule=class_rule)
    echo_lines(stats_lib.summary_lines(result))
    advice = run_plan.max_len_advice(result.training_lengths())
    for names, choice in advice:
        click.echo(f"fit's --max-len for {', '.join(names)}: {choice.max_len} ({choice.reason})")
    click.echo("pretrained: counted in its checkpoint's word pieces when fit runs (--preset)")
    if plot_path:
        stats_lib.plot_lengths(result, plot_path, advice[0][1].max_len)
        click.echo(f"-> {plot_path}")


@cli.command()
@click.argument("run", type=RUN_DIR)
@click.argument("sentence")
@click.option("--projector", type=DIRECTORY, default=None, callback=outside_reviewflow_dirs,
              help="Write vectors.tsv and metadata.tsv of the vocabulary for TensorBoard's Embedding Projector.")
@click.option("--decimals", type=click.IntRange(0, 8), default=3, show_default=True, help="Rounding of vectors.")
def embed(run, sentence, projector, decimals) -> None:
    """Show each token of SENTENCE, its id and its vector in the model's embedding layer(s)."""
    from models import embedding_inspection as embedding
    from models.evaluation import NotUtf8Lines

    not_utf8 = NotUtf8Lines()
    sentence = arguments_as_utf8([sentence], not_utf8)[0]
    if not_utf8.count:
        click.echo("warning: SENTENCE is not UTF-8; its bad bytes are shown as U+FFFD. Set a UTF-8 locale "
                   "(LANG=C.UTF-8) in the terminal or script that passes it.", err=True)
    embedded = embedding.embed_sentence(run, sentence)
    for layer_name, matrix in embedded.vectors.items():
        click.echo(f"[{layer_name}] {matrix.shape[1]} dimensions")
        for token, token_id, known, row in zip(embedded.tokens, embedded.ids, embedded.known, matrix):
            unknown = "" if known else " (not in the vocabulary: the unknown token's row)"
            click.echo(f"  {token!r:>16} id {token_id:>5}{unknown}: " + " ".join(f"{v:.{decimals}f}" for v in row))
    if projector:
        written = embedding.write_projector(run, projector)
        click.echo("-> " + ", ".join(str(p) for p in written))


@cli.command()
@click.argument("data_dir", type=EXISTING_DIRECTORY)
def verify(data_dir) -> None:
    """Check a data directory against its manifest: presence, sizes, sha256, every record's CRC, counts."""
    from pipeline import verify as verify_lib
    from pipeline.data_dir import DataDir

    checks = verify_lib.verify_data_dir(DataDir.read(data_dir))
    echo_lines(verify_lib.summary_lines(checks))
    bad = [check for check in checks if check.problem]
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(checks)} files in {data_dir} do not match the manifest. "
                                   "Re-run `reviewflow shard` (with --overwrite) to rebuild the directory.")
    click.echo(f"all {len(checks)} files match the manifest")


@cli.command("data-service")
@click.option("--port", type=click.IntRange(0, 65535), required=True,
              help="Port to serve on (0: any free port, printed at start).")
@click.option("--dispatcher", default=None, metavar="HOST:PORT",
              help="Start a worker that registers with this dispatcher; without it, start the dispatcher.")
@click.option("--host", default="localhost", show_default=True,
              help="The service has NO authentication. localhost: listen on loopback only. Any other value: "
                   "listen on ALL interfaces (TensorFlow cannot bind just one) and give trainers this name "
                   "for a worker; use only on a trusted, firewalled network.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Dispatcher only: journal its state here, so that a restarted dispatcher recovers its jobs.")
@click.pass_context
def data_service(ctx, port, dispatcher, host, work_dir) -> None:
    """Run a tf.data service dispatcher or worker (for fit --data-service) until Ctrl-C or SIGTERM."""
    from pipeline import data_service as service_lib, quiet  # TensorFlow only once a server starts

    if dispatcher is not None and work_dir is not None:
        raise click.UsageError("--work-dir is for the dispatcher; a worker keeps no state.")
    service_lib.check_port_free(port)  # before the restart and TensorFlow's import: refused in a second
    if service_lib.needs_restart(host):  # with the loopback shim preloaded (see pipeline/loopback_bind.c)
        service_lib.restart_with_shim()
    quiet.import_tensorflow(ctx.obj["verbose"])
    service_lib.serve(port, dispatcher, host, work_dir, announce=click.echo)


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=RUN_DIR)
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to listen on (TF Serving's REST port by default).")
@click.option("--host", default="localhost", show_default=True,
              help="The server has NO authentication. localhost: loopback only; 0.0.0.0 (or an address): reachable "
                   "by anyone on that network. Put a proxy with authentication in front of it for that.")
@click.option("--name", "names", multiple=True, metavar="NAME",
              help="The name each run is served under, in the order of RUNS (repeatable). Default: the run "
                   "directory's name.")
@click.option("--max-batch-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Most reviews scored in one model call; requests that arrive together share it (within the "
                   "model's own cap: pretrained 128). 1 turns batching off.")
@click.option("--max-wait-ms", type=FiniteFloatRange(min=0), default=2.0, show_default=True,
              help="Longest a request waits for others to join its batch.")
@click.option("--max-instances", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Most reviews one request may hold.")
@click.option("--max-review-bytes", type=click.IntRange(min=1), default=1 << 20, show_default=True,
              help="Longest review a request may hold, in UTF-8 bytes.")
@click.option("--max-body-bytes", type=click.IntRange(min=1), default=4 << 20, show_default=True,
              help="Largest request body; a larger one is answered 413.")
@click.option("--log-every", type=click.IntRange(min=1), default=1, show_default=True,
              help="Log one request in this many (1: every request), on stderr.")
def serve(runs, port, host, names, max_batch_size, max_wait_ms, max_instances, max_review_bytes, max_body_bytes,
          log_every) -> None:
    """Serve RUNS over HTTP: TF Serving's REST API (/v1/models/NAME:predict) and KServe V2 (/v2/models/NAME/infer).

    Requests that arrive together are scored as one batch. No authentication: see --host. Stops on Ctrl-C or
    SIGTERM after the requests in flight are answered.
    """
    from models.serving import server

    if names and len(names) != len(runs):
        raise click.UsageError(f"--name was given {len(names)} times for {len(runs)} runs; give one per run.")
    server.serve(list(runs), list(names) or None, host, port, max_batch_size, max_wait_ms / 1000, max_instances,
                 max_review_bytes, max_body_bytes, log_every, announce=click.echo)


def main() -> None:
    """The entry point: run the command, then leave without the interpreter's teardown."""
    import atexit
    import os

    try:
        cli(prog_name="reviewflow")
        code = 0
    except SystemExit as exc:  # click ends every command with one
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    cluster = sys.modules.get("models.multi_worker")
    if cluster is not None and cluster.joined():
        sys.exit(code)  # cluster workers keep the normal shutdown: peers may still be talking to them
    # Tearing down TensorFlow's modules and C++ state takes ~0.8 s and does nothing a finished command
    # needs: its outputs are written and renamed. Run the exit handlers (flushing logs), then leave.
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
