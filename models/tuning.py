"""`tune`: a KerasTuner search over a zoo model's builder arguments, learning rate, batch size and optimizer.

Each architecture defines its search space next to its builder
(`search_space(hp)`); the training settings searched for every model are
here. Trials stream from the shards like `fit`, sharing one on-disk id cache;
validation loss is the objective. The tuner's state lives in RUN/tuner, so a
killed search resumes where it stopped. The best configuration is then
trained by `fit` into RUN itself, which ends as an ordinary run, with
RUN/trials.csv and RUN/trials.json beside it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
import time
from pathlib import Path

import keras
import keras_tuner as kt

from models import callbacks as callbacks_lib, run_plan, training, word_vectors, zoo
from models.run_dir import CACHE_DIR, TRIALS_CSV, TRIALS_JSON, TUNER_DIR, RunDir
from pipeline import atomic, dataset
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError

TUNERS = ("hyperband", "random", "bayesian")
SECONDS_FILE = "seconds.json"    # in the tuner's project directory: each trial's wall time
OBJECTIVE = "val_loss"
BATCH_SIZES = (32, 64, 128, 256)


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    fit: training.FitSettings      # the search's fixed settings; `epochs` is the final run's
    tuner: str = "hyperband"
    max_trials: int = 10
    max_epochs: int = 4            # per trial (Hyperband: the most any trial gets)

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise ReviewflowError(f"unknown tuner {self.tuner!r}; choose from {', '.join(TUNERS)}.")


def training_space(hp: kt.HyperParameters, base: training.FitSettings, num_train_examples: int) -> dict:
    """What every model searches besides its builder: learning rate around its default, batch size, optimizer.

    No batch is so large that an epoch of the train split has fewer steps than `fit` allows (a few hundred
    reviews in batches of 256 are two steps an epoch: every trial ended at the majority class).
    """
    spec = base.spec
    default = spec.learning_rate
    optimizers = list(dict.fromkeys([spec.optimizer, "adam", "rmsprop"]))  # the model's own first
    largest = run_plan.largest_batch_size(num_train_examples)
    space = {"learning_rate": hp.Float("learning_rate", default / 10, default * 10, sampling="log"),
             "batch_size": hp.Choice("batch_size", sorted({min(size, largest) for size in BATCH_SIZES})),
             "optimizer": hp.Choice("optimizer", optimizers)}
    if spec.warmup_share:  # a fine-tuned encoder: how long the learning rate warms up
        space["warmup_share"] = hp.Choice("warmup_share", [0.0, 0.06, 0.1, 0.2])
    return space


def trial_settings(hp: kt.HyperParameters, base: training.FitSettings, fixed: dict,
                   num_train_examples: int) -> training.FitSettings:
    """The fit settings of one point of the search space; what the user set (`fixed`) is not searched."""
    for name, value in fixed.items():
        hp.Fixed(name, value)  # registered first: the search space's entry of that name then keeps it
    hparams = {**base.spec.search_space(hp), **base.hparams}
    return dataclasses.replace(base, hparams=hparams, **training_space(hp, base, num_train_examples))


def fixed_values(settings: training.FitSettings) -> dict:
    """The builder arguments and training settings the user gave: the search leaves them as they are."""
    given = {"learning_rate": settings.learning_rate, "batch_size": settings.batch_size,
             "optimizer": settings.optimizer}
    return {**settings.hparams, **{name: value for name, value in given.items() if value is not None}}


class ZooHyperModel(kt.HyperModel):
    """Builds a trial's model and streams the shards into it, as `fit` does."""

    def __init__(self, base: training.FitSettings, fixed: dict, data: DataDir, facts: run_plan.DataFacts,
                 vectors, cache_dir: Path):
        super().__init__(name=base.model)
        self.base, self.fixed, self.data, self.vectors, self.cache_dir = base, fixed, data, vectors, cache_dir
        self.facts = facts  # the lengths, counted once for every trial
        # Length, vocabulary and truncation are not searched: every trial shares one vectorizer and id cache.
        self.vectorizer = training.make_vectorizer(self.plan(base), base, data)

    def plan(self, settings: training.FitSettings) -> run_plan.RunPlan:
        return training.make_plan(settings, self.data, facts=self.facts)

    def build(self, hp):
        settings = trial_settings(hp, self.base, self.fixed, self.data.num_examples("train"))
        plan = self.plan(settings)
        model = training.build_and_compile(plan, settings, self.vectorizer.vocabulary_size(), self.vectors,
                                           num_classes=self.data.classes.num_classes)
        settings.spec.adapt(model, dataset.make_dataset(self.data, "train", dataset.BLOCK_EXAMPLES,
                                                        plan.max_len.max_len, vectorizer=self.vectorizer))
        return model

    def fit(self, hp, model, *args, **kwargs):
        settings = trial_settings(hp, self.base, self.fixed, self.data.num_examples("train"))
        train, validation = training.make_inputs(self.plan(settings), settings, self.data, self.vectorizer,
                                                 self.cache_dir)
        kwargs["verbose"] = 0  # KerasTuner passes on search()'s verbose; its own display reports each trial
        return model.fit(train, validation_data=validation, steps_per_epoch=settings.steps_per_epoch,
                         validation_steps=settings.validation_steps, shuffle=False, **kwargs)


def _timed(tuner_class):
    """The tuner class, recording each trial's seconds in its project directory."""
    class Timed(tuner_class):
        def run_trial(self, trial, *args, **kwargs):
            started = time.perf_counter()
            result = super().run_trial(trial, *args, **kwargs)
            path = Path(self.project_dir) / SECONDS_FILE
            seconds = json.loads(path.read_text()) if path.exists() else {}
            seconds[trial.trial_id] = round(seconds.get(trial.trial_id, 0) + time.perf_counter() - started, 2)
            atomic.write_json(path, seconds)
            return result
    return Timed


def make_tuner(settings: TuneSettings, hypermodel: ZooHyperModel, directory: Path) -> kt.Tuner:
    """The chosen tuner over `directory`, reloading the state a killed search left there."""
    common = dict(hypermodel=hypermodel, objective=kt.Objective(OBJECTIVE, "min"), seed=settings.fit.seed,
                  directory=str(directory), project_name=settings.fit.model, overwrite=False)
    if settings.tuner == "hyperband":
        tuner = _timed(kt.Hyperband)(max_epochs=settings.max_epochs, factor=3, **common)
        tuner.oracle.max_trials = settings.max_trials  # Hyperband plans its own trials; cap them here
        return tuner
    tuner_class = kt.RandomSearch if settings.tuner == "random" else kt.BayesianOptimization
    return _timed(tuner_class)(max_trials=settings.max_trials, **common)


def failed_search(tuner: kt.Tuner) -> str:
    """What to tell the user when no trial finished: the first trial's error."""
    failed = [trial for trial in tuner.oracle.trials.values() if trial.status in ("FAILED", "INVALID")]
    lines = [line for line in (failed[0].message or "").splitlines() if line.strip()] if failed else []
    reason = lines[-1].strip() if lines else "no trial ran"
    return (f"no trial of the search finished ({len(failed)} failed); the first failed with: {reason[:300]}. Fix "
            "the cause (the options or --param values), then run the same command again: finished trials are kept.")


def trial_rows(tuner: kt.Tuner) -> list[dict]:
    """One row per trial, best validation loss first: its values, validation loss and accuracy, seconds."""
    seconds_path = Path(tuner.project_dir) / SECONDS_FILE
    seconds = json.loads(seconds_path.read_text()) if seconds_path.exists() else {}
    rows = []
    for trial in tuner.oracle.trials.values():
        metrics = trial.metrics
        val_loss = metrics.get_best_value(OBJECTIVE) if metrics.exists(OBJECTIVE) else None
        val_accuracy = metrics.get_best_value("val_accuracy") if metrics.exists("val_accuracy") else None
        rows.append({"trial": trial.trial_id, "status": trial.status, **trial.hyperparameters.values,
                     "val_loss": val_loss, "val_accuracy": val_accuracy, "seconds": seconds.get(trial.trial_id)})
    return sorted(rows, key=lambda row: (row["val_loss"] is None, row["val_loss"] or 0.0))


def as_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = [columns] + cells
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths)).rstrip() for line in lines)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def best_line(row: dict) -> str:
    """`trial 1: embedding_dim 128, learning_rate 0.000896, ..., val_loss 0.6922`: the best row, as the table."""
    values = ", ".join(f"{key} {_cell(value)}" for key, value in row.items() if key not in ("trial", "status"))
    return f"trial {row['trial']}: {values}"


def write_trials(run: RunDir, settings: TuneSettings, rows: list[dict]) -> None:
    table = io.StringIO()
    writer = csv.DictWriter(table, list(dict.fromkeys(key for row in rows for key in row)), lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    atomic.write_text(run / TRIALS_CSV, table.getvalue())
    atomic.write_json(run / TRIALS_JSON, {"model": settings.fit.model, "tuner": settings.tuner,
                                          "max_trials": settings.max_trials, "max_epochs": settings.max_epochs,
                                          "objective": OBJECTIVE, "trials": rows})


def tune(settings: TuneSettings, log=print, verbose: int = 1,
         data: DataDir | None = None) -> tuple[training.FitResult, list[dict]]:
    """Search, write the trials table, then train the best configuration as an ordinary run in RUN.

    `verbose` 0 keeps KerasTuner's trial tables and the final fit's epochs off the output.
    """
    zoo.check_hyperparameters(settings.fit.model, settings.fit.hparams)
    RunDir(settings.fit.out).refuse_unusable(settings.fit.overwrite)  # before the shards are hashed
    data = data or training.open_data(settings.fit.data)
    facts = training.data_facts(settings.fit, data)
    vocab = training.make_plan(settings.fit, data, facts=facts).vocab
    base, vectors = word_vectors.with_vectors(settings.fit, data, vocab.vocab_size)
    # The --param values every trial keeps, built once: one the model refuses (c=-1) would fail every trial
    # only after an --overwrite had deleted RUN.
    plan = training.make_plan(base, data, facts=facts)
    training.build_and_compile(plan, base, training.make_vectorizer(plan, base, data).vocabulary_size(), vectors,
                               data.classes.num_classes)
    run = RunDir(settings.fit.out)
    # Every input is checked: only now may RUN change. Held through the search and the best one's fit.
    with run.locked(settings.fit.overwrite):
        return _search_and_fit(run, settings, base, vectors, facts, data, log, verbose)


def _search_and_fit(run: RunDir, settings: TuneSettings, base: training.FitSettings, vectors, facts, data: DataDir,
                    log, verbose: int) -> tuple[training.FitResult, list[dict]]:
    run.claim(settings.fit.overwrite)
    if base.seed is not None:
        keras.utils.set_random_seed(base.seed)
    cache_dir = run / TUNER_DIR / CACHE_DIR
    shutil.rmtree(cache_dir, ignore_errors=True)  # a killed search may have left it half-written
    if base.steps_per_epoch:
        base = dataclasses.replace(base, cache=False)  # capped epochs would leave the cache half-written
    fixed = fixed_values(dataclasses.replace(settings.fit, hparams=base.hparams))
    tuner = make_tuner(settings, ZooHyperModel(base, fixed, data, facts, vectors, cache_dir), run / TUNER_DIR)
    log(f"tuning {base.model} with {settings.tuner} (at most {settings.max_trials} trials of up to "
        f"{settings.max_epochs} epochs) in {run / TUNER_DIR}")
    try:
        tuner.search(epochs=settings.max_epochs, callbacks=[callbacks_lib.StopOnInvalidLoss()], verbose=verbose)
    except RuntimeError as exc:  # KerasTuner gives up after three failed trials in a row
        raise ReviewflowError(failed_search(tuner)) from exc
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)  # as fit's: not left by a failed search either
    if not any(trial.status == "COMPLETED" for trial in tuner.oracle.trials.values()):
        raise ReviewflowError(failed_search(tuner))
    rows = trial_rows(tuner)
    write_trials(run, settings, rows)
    best = trial_settings(tuner.get_best_hyperparameters(1)[0], base, fixed, data.num_examples("train"))
    log(f"best of {len(rows)} trials: {best_line(rows[0])}; training it into {run.path}")
    final = dataclasses.replace(best, overwrite=False)
    return training.fit(final, verbose=2 if verbose else 0, log=log, data=data), rows
