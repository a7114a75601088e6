"""`study`: fit (or tune), evaluate and compare several models into one directory, as the reference studies did."""

from __future__ import annotations

import dataclasses
import traceback
from pathlib import Path

from models import word_vectors
from models.comparison import TEST_SPLIT, describe_run, scored_on, sort_rows, write_comparison
from models.evaluation import evaluate
from models.run_dir import RunDir
from models.training import FitSettings, fit, open_data
from pipeline.data_dir import DataDir


def scored_test_of(run: RunDir, data: DataDir) -> bool:
    """Whether the run's last `evaluate` scored `data`'s test split, as a study's does."""
    metrics = run.metrics()
    return metrics is not None and scored_on(metrics)["scored_set"][0] == (TEST_SPLIT, data.manifest_sha256)


def settings_for(base: FitSettings, name: str, run_dir: Path, log) -> FitSettings:
    """The study's settings for one model; pretrained vectors go only to models with a word embedding."""
    settings = dataclasses.replace(base, model=name, out=run_dir)
    if base.embeddings is not None and not word_vectors.has_word_embedding(name):
        log(f"== {name}: has no word embedding; trained without --embeddings")
        settings = dataclasses.replace(settings, embeddings=None, freeze_embeddings=False)
    elif base.freeze_embeddings and word_vectors.table_holds_ngrams(name, base.hparams):
        log(f"== {name}: its embedding table holds n-grams too; its vectors are not frozen")
        settings = dataclasses.replace(settings, freeze_embeddings=False)
    return settings


def _train(settings: FitSettings, data: DataDir, tune: dict | None, log) -> None:
    if tune is None:
        result = fit(settings, verbose=2, log=log, data=data)
    else:
        from models import tuning  # imports KerasTuner: only when asked for

        result, _ = tuning.tune(tuning.TuneSettings(fit=settings, **tune), log=log, data=data)
    if result.warning:  # the kept epoch learnt nothing: said in the study's log too
        log(f"== {settings.model}: {result.warning}")


def study(base: FitSettings, model_names: list[str], log=print, tune: dict | None = None,
          data: DataDir | None = None) -> list[dict]:
    """Fit (or, with `tune`, the TuneSettings' options, tune) and evaluate each model into `base.out/NAME`.

    `data`: `base.data` opened by `training.open_data` (opened here if not given). A failure is a row, not the end.
    """
    data = data or open_data(base.data)
    rows = []
    for name in model_names:
        run_dir = Path(base.out) / name
        run = RunDir(run_dir)
        try:
            trained = run.is_complete() and not base.overwrite
            if trained and scored_test_of(run, data):
                log(f"== {name}: complete in {run_dir}, skipped")
            else:
                if trained:  # evaluated on something else since (another split, a file), or not yet
                    log(f"== {name}: complete in {run_dir}; evaluating it on the test split")
                else:
                    log(f"== {name}: {'tuning' if tune else 'training'} into {run_dir}")
                    _train(settings_for(base, name, run_dir, log), data, tune, log)
                metrics = evaluate(run_dir, data)
                log(f"== {name}: test accuracy {metrics['accuracy']:.4f}")
            rows.append(describe_run(run_dir))
        except Exception as exc:  # noqa: BLE001 - one model's failure must not stop the others
            log(f"== {name}: FAILED: {exc}")
            log(traceback.format_exc(limit=3))
            rows.append(describe_run(run_dir, error=f"{type(exc).__name__}: {exc}"[:300]))
    rows = sort_rows(rows)
    write_comparison(rows, base.out)
    return rows
