"""One plan per run: what the user asked for (`FitSettings`) and the data (`DataFacts`) -> every choice, once.

`plan_run` is a pure function: it reads no file and runs nothing. The
plan holds `--max-len`, the vocabulary, the batch, the optimizer and its
schedule and the truncation, each with where it came from and why. `fit` makes
it once, prints it, records it in `config.json` (`plan`) and hands it whole to
what builds, compiles, trains and writes; `stats` gives the same `--max-len`
advice from the same function.
"""

from __future__ import annotations

import dataclasses

from models import max_len as max_len_lib, vocab_size as vocab_size_lib, zoo
from models.zoo.spec import ModelSpec
from pipeline.text_settings import DEFAULT_TRUNCATE

# A small corpus gets smaller batches, so that an epoch still takes this many optimizer steps: with a
# few hundred reviews and the default batch, ten epochs were ~40 steps and no model left the majority class.
MIN_STEPS_PER_EPOCH = 32
MIN_BATCH_SIZE = 8
# Each epoch scores at most this many validation reviews: every k-th review of a larger split, the same reviews
# each epoch (so early stopping still compares epochs on the same reviews). 50k reviews put an accuracy within
# +-0.35 points (95%); the whole held-out 20% of a 3.6M-line corpus, 720k reviews scored after every epoch, is a
# tenth or more of a bag model's epoch, and its first pass vectorizes them all.
VALIDATION_SAMPLE_REVIEWS = 50_000
# Validation and calibration only run the model forward, so a step can score more reviews than a training step
# for less overhead a review: `ngram_bag` scores 40k validation reviews in 0.30-0.32 s at 1024 a batch against
# 0.62-0.63 s at its training batch of 256. A model's spec caps it (`inference_batch_size`: attention's memory).
VALIDATION_BATCH_REVIEWS = 1024


@dataclasses.dataclass(frozen=True)
class Choice:
    """One setting of a run, where it came from ("option", "model", "data", ...) and why."""

    value: object
    source: str
    reason: str


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What a plan needs to know of the data directory (and of the model's tokenizer, for the lengths)."""

    num_train_examples: int | None = None
    num_validation_examples: int | None = None
    lengths: dict[int, int] | None = None   # training reviews per length, in the model's own units
    length_unit: str = "tokens"
    vocabulary_size: int | None = None      # ids in the shard's vocab.txt


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Every choice of one run: made once, recorded in config.json, read by everything that trains."""

    model: str
    max_len: max_len_lib.MaxLenChoice
    vocab: vocab_size_lib.VocabChoice
    truncate: str
    batch: Choice               # per replica
    epochs: Choice              # the most epochs fit trains
    replicas: int
    optimizer: Choice
    learning_rate: Choice
    warmup_share: Choice
    jit_compile: Choice         # the training step compiled by XLA
    validation_every: Choice    # each epoch scores every k-th validation review
    validation_batch_size: int  # reviews a validation (and calibration) step scores
    clipnorm: float | None
    total_steps: int | None     # what a decaying learning rate runs down over
    early_stopping: bool

    @property
    def batch_size(self) -> int:
        return self.batch.value

    @property
    def global_batch_size(self) -> int:
        return self.batch.value * self.replicas

    @property
    def decay_steps(self) -> tuple[int, int] | None:
        """(warm-up steps, total steps) where the rate warms up linearly, then decays linearly to 0; else None."""
        if not (self.warmup_share.value and self.total_steps):
            return None
        return max(1, round(self.warmup_share.value * self.total_steps)), self.total_steps

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """What `fit` prints of its choices."""
        return [f"--max-len {self.max_len.max_len} ({self.max_len.source}: {self.max_len.reason}); longer reviews "
                f"keep their {self.truncate.replace('_', ' and ')}",
                f"batch {self.batch_size} ({self.batch.source}: {self.batch.reason}); at most {self.epochs.value} "
                f"epochs ({self.epochs.source}); optimizer "
                f"{self.optimizer.value} at {self.learning_rate.value:g} ({self.optimizer.source})"
                + (f", warmed up over {self.warmup_share.value:.0%} of the steps, then decayed linearly to 0 "
                   f"({self.warmup_share.source})" if self.decay_steps else "")
                + (f"; step compiled by XLA ({self.jit_compile.source}: {self.jit_compile.reason})"
                   if self.jit_compile.value else ""),
                f"validation: {self.validation_every.reason} ({self.validation_every.source}), "
                f"{self.validation_batch_size} a batch"]


def largest_batch_size(num_train_examples: int) -> int:
    """The largest batch that still gives a train split of this size MIN_STEPS_PER_EPOCH steps an epoch."""
    return max(MIN_BATCH_SIZE, num_train_examples // MIN_STEPS_PER_EPOCH)


def batch_choice(given: int | None, model_default: int, num_train_examples: int | None) -> Choice:
    """`given`, or the model's batch lowered so that a small train split still gives MIN_STEPS_PER_EPOCH steps."""
    if given is not None:
        return Choice(given, "option", "--batch-size")
    if num_train_examples is None or model_default <= largest_batch_size(num_train_examples):
        return Choice(model_default, "model", "the model's")
    return Choice(largest_batch_size(num_train_examples), "data",
                  f"the model's {model_default}, lowered so that {num_train_examples} training reviews make "
                  f"{MIN_STEPS_PER_EPOCH} steps an epoch")


def batch_for_replicas(batch: Choice, num_train_examples: int | None, replicas: int) -> Choice:
    """`batch`, lowered where the whole train split would be one batch that does not split evenly over the
    replicas: then two batches, the first a full one, which splits evenly.

    Why: Keras 3's `fit` under a strategy builds the model from a first batch averaged over the replicas, and
    fails where its parts differ in size (pipeline/batching.py: the first full batch is brought before the
    partial ones, and a split of one batch has no full one). 111 reviews at --batch-size 64 on 2 replicas
    stopped `fit` at its first step. A split of fewer reviews than replicas is left as it is.
    """
    rows = num_train_examples
    if replicas == 1 or rows is None or rows > batch.value * replicas or rows % replicas == 0 or rows < replicas:
        return batch
    lowered = (rows - 1) // replicas
    return Choice(lowered, "data", f"{batch.value} ({batch.source}: {batch.reason}), lowered so that {rows} "
                                   f"training reviews make a first batch of {lowered * replicas} that splits "
                                   f"evenly over {replicas} replicas")


def given_or(value, default, option: str) -> Choice:
    return Choice(value, "option", option) if value is not None else Choice(default, "model", "the model's")


# The plan's `Choice` fields and the FitSettings field each is the choice of.
CHOICE_SETTINGS = {"batch": "batch_size", "epochs": "epochs", "optimizer": "optimizer",
                   "learning_rate": "learning_rate", "warmup_share": "warmup_share", "jit_compile": "jit_compile",
                   "validation_every": "validation_sample"}


def from_interrupted_run(plan: "RunPlan", names: frozenset) -> "RunPlan":
    """The plan with the choices named in `names` marked as the interrupted run's (a resume takes them)."""
    reason = "the interrupted run's"
    changes = {choice: Choice(getattr(plan, choice).value, "run", reason)
               for choice, setting in CHOICE_SETTINGS.items() if setting in names}
    if "max_len" in names:
        changes["max_len"] = max_len_lib.MaxLenChoice(plan.max_len.max_len, "run", reason, plan.max_len.covered)
    if "vocab_size" in names:
        changes["vocab"] = vocab_size_lib.VocabChoice(plan.vocab.vocab_size, "run", reason)
    return dataclasses.replace(plan, **changes)


def validation_batch_size(spec: ModelSpec, global_batch: int) -> int:
    """VALIDATION_BATCH_REVIEWS within the model's inference cap, and never fewer than a training step's."""
    return max(global_batch, min(VALIDATION_BATCH_REVIEWS, spec.inference_batch_size or VALIDATION_BATCH_REVIEWS))


def count_steps(epochs: int, steps_per_epoch: int | None, num_train_examples: int | None,
                global_batch: int) -> int | None:
    """Optimizer steps of the whole run."""
    if steps_per_epoch:
        return steps_per_epoch * epochs
    if num_train_examples is None:
        return None
    return -(-num_train_examples // global_batch) * epochs


def sure_steps(epochs: int, patience: int, early_stopping: bool, steps_per_epoch: int | None,
               num_train_examples: int | None, global_batch: int) -> int | None:
    """The optimizer steps a run trains whatever its validation loss does: early stopping ends it after
    `patience` epochs without a better one, so it trains at least patience + 1 (of `epochs`)."""
    return count_steps(min(epochs, patience + 1) if early_stopping else epochs, steps_per_epoch,
                       num_train_examples, global_batch)


def jit_choice(given: bool | None, spec: ModelSpec, steps: int | None) -> Choice:
    """--jit-compile / --no-jit-compile, or XLA where the model's spec says a run sure to train `steps` steps
    repays the compiles (one per batch width and function, ~0.5-1 s each, for a cheaper step)."""
    if given is not None:
        return Choice(bool(given), "option", "--jit-compile" if given else "--no-jit-compile")
    if spec.xla_from_steps is None:
        return Choice(False, "model", "the model's")
    if steps is not None and steps >= spec.xla_from_steps:
        return Choice(True, "data", f"{steps} steps sure to be trained, at least the {spec.xla_from_steps} that "
                                    "repay compiling each batch width")
    return Choice(False, "data", f"{steps} steps sure to be trained, fewer than the {spec.xla_from_steps} that "
                                 "repay compiling each batch width")


def validation_limit(given: int | None) -> int:
    """The most validation reviews an epoch scores: --validation-sample, or VALIDATION_SAMPLE_REVIEWS; 0: all."""
    return VALIDATION_SAMPLE_REVIEWS if given is None else given


def validation_choice(given: int | None, num_validation: int | None) -> Choice:
    """Every k-th validation review, so that an epoch scores at most `validation_limit(given)` of them."""
    limit = validation_limit(given)
    source = "option" if given is not None else "data"
    if not limit or num_validation is None or num_validation <= limit:
        whole = f"all {num_validation} reviews" if num_validation is not None else "the whole split"
        return Choice(1, source, f"{whole} each epoch" + (f", at most {limit}" if limit else ""))
    every = -(-num_validation // limit)
    return Choice(every, source, f"every {every}th of {num_validation} reviews each epoch, the same "
                                 f"~{num_validation // every} (at most {limit}; calibration too)")


def max_len_choice(given: int | None, spec: ModelSpec, facts: DataFacts) -> max_len_lib.MaxLenChoice:
    return max_len_lib.choose(given, spec.lengths.coverage, spec.lengths.cap, facts.lengths, facts.length_unit)


def plan_run(settings, spec: ModelSpec, facts: DataFacts, vocab: vocab_size_lib.VocabChoice,
             replicas: int = 1, from_run: frozenset = frozenset()) -> RunPlan:
    """The run's plan from the user's `settings` (FitSettings), the model's `spec` and the data's `facts`.

    `vocab` is the model's preprocessor's choice (models/zoo/preprocessors.py): the shard's words or a preset's.
    `from_run`: the settings a resume took from the interrupted run (`training.resume_settings`).
    """
    batch = batch_for_replicas(batch_choice(settings.batch_size, spec.batch_size, facts.num_train_examples),
                               facts.num_train_examples, replicas)
    epochs = given_or(settings.epochs, spec.epochs, "--epochs")
    global_batch = batch.value * replicas
    sure = sure_steps(epochs.value, settings.patience, spec.early_stopping, settings.steps_per_epoch,
                      facts.num_train_examples, global_batch)
    plan = RunPlan(
        model=spec.name, max_len=max_len_choice(settings.max_len, spec, facts), vocab=vocab,
        truncate=settings.truncate or DEFAULT_TRUNCATE, batch=batch, epochs=epochs, replicas=replicas,
        optimizer=given_or(settings.optimizer, spec.optimizer, "--optimizer"),
        learning_rate=given_or(settings.learning_rate, spec.learning_rate, "--learning-rate"),
        warmup_share=given_or(settings.warmup_share, spec.warmup_share, "--warmup-share"),
        jit_compile=jit_choice(settings.jit_compile, spec, sure),
        validation_every=validation_choice(settings.validation_sample, facts.num_validation_examples),
        validation_batch_size=validation_batch_size(spec, global_batch),
        clipnorm=spec.clipnorm,
        total_steps=count_steps(epochs.value, settings.steps_per_epoch, facts.num_train_examples, global_batch),
        early_stopping=spec.early_stopping)
    return from_interrupted_run(plan, from_run) if from_run else plan


def settings_record(settings, plan: RunPlan) -> dict:
    """config.json's `settings`: what the user asked for with the plan's choices filled in (as earlier
    versions wrote it, so that they read it and a resume compares like with like)."""
    filled = dataclasses.replace(
        settings, max_len=plan.max_len.max_len, vocab_size=plan.vocab.vocab_size, truncate=plan.truncate,
        batch_size=plan.batch_size, epochs=plan.epochs.value, optimizer=plan.optimizer.value,
        learning_rate=plan.learning_rate.value, warmup_share=plan.warmup_share.value,
        jit_compile=plan.jit_compile.value, validation_sample=validation_limit(settings.validation_sample),
        preset=settings.preset if plan.vocab.source == "preset" else None)
    return filled.to_json()


def max_len_advice(lengths: dict[int, int] | None) -> list[tuple[list[str], max_len_lib.MaxLenChoice]]:
    """The --max-len `fit` would choose from these training lengths, for each group of models that choose alike
    (those that read the shard's tokens; a preset counts its own word pieces when `fit` runs)."""
    groups = zoo.grouped("lengths", [spec for spec in zoo.SPECS if spec.preprocessor == "vocabulary"])
    return [(names, max_len_choice(None, zoo.spec(names[0]), DataFacts(lengths=lengths)))
            for names in groups.values()]
