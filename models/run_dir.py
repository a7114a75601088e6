"""A run directory: the one place that knows its files, how to read them and how to write them.

RUN/config.json    every setting of the run, the vocabulary and data it was trained on (`RunConfig`)
RUN/history.json   per-epoch metrics, time and examples/s (and history.csv, curves.png)
RUN/metrics.json   what `evaluate` measured (and roc.png, confusion.png, reliability.png, length.png)
RUN/errors.jsonl   the most confident mistakes of the last `evaluate`
RUN/model.keras    end-to-end model: raw strings -> P(positive), shape (batch, 1); written last
RUN/export/        SavedModel with a string `serve` signature for TF Serving
RUN/checkpoints/   best model so far; RUN/backup/ resume state; RUN/cache/ token ids; RUN/logs/ TensorBoard
RUN/tuner/         `tune`'s search state, with RUN/trials.csv and RUN/trials.json
RUN/.reviewflow    the marker: reviewflow wrote this directory (`pipeline/ownership.py`)

`--overwrite` deletes exactly these entries (`RUN_LAYOUT`), and only in a directory that holds nothing else.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
from pathlib import Path

from models import zoo  # plain data: the specs
from pipeline import atomic, dir_lock, ownership
from pipeline.errors import ReviewflowError

MODEL_FILE = "model.keras"
EXPORT_DIR = "export"
CONFIG_FILE = "config.json"
HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"
METRICS_FILE = "metrics.json"
CURVES_PNG = "curves.png"
ERRORS_FILE = "errors.jsonl"
ROC_PNG = "roc.png"
CONFUSION_PNG = "confusion.png"
RELIABILITY_PNG = "reliability.png"
LENGTH_PNG = "length.png"
BEST_CHECKPOINT = "checkpoints/best.keras"
BACKUP_DIR = "backup"
BACKUP_METADATA = "training_metadata.json"  # Keras's BackupAndRestore: {"epoch": epochs done, "batch": ...}
TRAINED_MARKER = "trained.json"  # in BACKUP_DIR: training ended, the run was being finished
CACHE_DIR = "cache"
LOGS_DIR = "logs"
TUNER_DIR = "tuner"
TRIALS_CSV = "trials.csv"
TRIALS_JSON = "trials.json"
# Every entry reviewflow writes in a run directory (temporary `.incomplete` names are added by the layout).
RUN_LAYOUT = ownership.Layout(
    kind="run directory",
    names=tuple(re.escape(name) for name in (
        MODEL_FILE, "model.incomplete.keras", EXPORT_DIR, EXPORT_DIR + ".old", CONFIG_FILE, HISTORY_JSON,
        HISTORY_CSV, METRICS_FILE, CURVES_PNG, ERRORS_FILE, ROC_PNG, CONFUSION_PNG, RELIABILITY_PNG, LENGTH_PNG,
        BEST_CHECKPOINT.split("/")[0], BACKUP_DIR, CACHE_DIR, LOGS_DIR, TUNER_DIR, TRIALS_CSV, TRIALS_JSON,
        dir_lock.LOCK_FILE)),
    legacy_file=CONFIG_FILE, legacy_keys=("settings", "versions"))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What `config.json` holds."""

    settings: dict                      # FitSettings.to_json()
    global_batch_size: int
    replicas: int
    vocab_size: int
    vocab_sha256: str
    data_manifest_sha256: str
    parameters: int
    versions: dict
    embeddings: dict | None = None      # pretrained vectors: file, dimensions, coverage (fit --embeddings)
    max_len: dict | None = None         # how --max-len was chosen: max_len, source, reason, covered (max_len.py)
    preset: dict | None = None          # the pretrained checkpoint: path, format, architecture, weights' sha256
    classes: dict | None = None         # names (output order), positive (two classes), label_prefix; None: older runs
    plan: dict | None = None            # every choice of the run with its reason (models/run_plan.py); None: older
    calibration: dict | None = None     # the temperature and validation ECE before/after (models/calibration.py)

    @classmethod
    def from_json(cls, obj: dict) -> "RunConfig":
        """config.json as written by this version or another: a key this version does not know is ignored."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in obj.items() if key in known})

    def class_names(self) -> list[str]:
        """The classes in the model's output order (Amazon polarity's 1 and 2 for runs written before classes)."""
        return self.classes["names"] if self.classes else ["1", "2"]

    def label_prefix(self) -> str:
        return self.classes["label_prefix"] if self.classes else "__label__"

    @property
    def num_classes(self) -> int:
        return len(self.class_names())

    @property
    def model(self) -> str:
        return self.settings["model"]


def pending_checkpoint(best: Path, epoch: int | str) -> Path:
    """Where `fit` keeps epoch `epoch`'s better model until that epoch is backed up (models/callbacks.py)."""
    return best.with_name(f"{best.stem}.epoch-{epoch}.pending{best.suffix}")


def pending_epoch(pending: Path) -> int:
    """The epoch of a `pending_checkpoint` file, from its name."""
    return int(pending.name.split(".epoch-")[1].split(".")[0])


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The files of one run, under `path`."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    def is_complete(self) -> bool:
        """A run is complete once its end-to-end model is in place (written last)."""
        return (self / MODEL_FILE).is_file() and (self / CONFIG_FILE).is_file()

    def has_config(self) -> bool:
        return (self / CONFIG_FILE).is_file()

    # Reading: one reader per file.
    def config(self) -> RunConfig:
        path = self / CONFIG_FILE
        if not path.is_file():
            self.refuse_other_kind()
            raise ReviewflowError(f"{self.path}: no {CONFIG_FILE}; this is not a run directory. Run `fit` first.")
        obj = read_json(path, dict, REFIT)
        missing = [field.name for field in dataclasses.fields(RunConfig)
                   if field.default is dataclasses.MISSING and field.name not in obj]
        if missing:
            raise ReviewflowError(f"{path} is damaged: it lacks {', '.join(missing)}. {REFIT}")
        return RunConfig.from_json(obj)

    def history(self) -> list[dict]:
        """Rows of per-epoch metrics; empty before the first epoch ends."""
        path = self / HISTORY_JSON
        return read_json(path, list, REFIT) if path.exists() else []

    def metrics(self) -> dict | None:
        """What the last `evaluate` wrote, or None."""
        path = self / METRICS_FILE
        return read_json(path, dict, REEVALUATE) if path.exists() else None

    def errors(self) -> list[dict]:
        """The most confident mistakes `evaluate` kept; empty before it ran."""
        path = self / ERRORS_FILE
        if not path.exists():
            return []
        lines = path.read_bytes().splitlines()
        return [read_json(path, dict, REEVALUATE, line, number) for number, line in enumerate(lines, start=1)]

    # Writing: every file atomically.
    def write_config(self, config: RunConfig) -> None:
        atomic.write_json(self / CONFIG_FILE, dataclasses.asdict(config))

    def backed_up_epochs(self) -> int:
        """Epochs the resume state holds (what Keras's backup resumes after); 0 without one."""
        path = self / BACKUP_DIR / BACKUP_METADATA
        return int(read_json(path, dict, REFIT).get("epoch", 0)) if path.exists() else 0

    def mark_trained(self) -> None:
        """Record in the resume state that training ended: a run killed while it is finished (calibration,
        export, `model.keras`) then resumes there instead of training again."""
        atomic.write_json(self / BACKUP_DIR / TRAINED_MARKER, {"epochs": self.backed_up_epochs()})

    def was_trained(self) -> bool:
        return (self / BACKUP_DIR / TRAINED_MARKER).exists()

    def remove_backup(self) -> None:
        """The resume state, once `model.keras` marks the run complete."""
        shutil.rmtree(self / BACKUP_DIR, ignore_errors=True)

    def write_history(self, rows: list[dict]) -> None:
        atomic.write_json(self / HISTORY_JSON, rows)
        atomic.write_text(self / HISTORY_CSV, _as_csv(rows))

    def write_metrics(self, metrics: dict) -> None:
        atomic.write_json(self / METRICS_FILE, metrics)

    def write_errors(self, records: list[dict]) -> None:
        atomic.write_text(self / ERRORS_FILE, "".join(json.dumps(record, ensure_ascii=False) + "\n"
                                                      for record in records))

    def locked(self, overwrite: bool):
        """Hold the run's lock (`pipeline/dir_lock.py`) for the block: one process writes a run at a time. The
        refusals come first (a user's folder, a complete run without `overwrite`): a refused command changes
        nothing, not even a lock file. The marker comes before the lock file: a folder left with a lock file
        alone (a kill between the two) would look like a user's to every later run."""
        self.refuse_unusable(overwrite)
        ownership.claim(self.path, RUN_LAYOUT)
        return dir_lock.locked(self.path)

    def evaluating(self):
        """The run's lock while `evaluate` scores a complete run and writes its metrics, errors and plots: two at
        once would mix their files (one split's metrics.json beside another's errors.jsonl), and a fit
        retraining the run would get the old model's metrics."""
        return dir_lock.locked(self.path)

    def refuse_other_kind(self) -> None:
        """Name a directory reviewflow marked as another kind (a data directory given where a run belongs)."""
        kind = ownership.marked_kind(self.path)
        if kind is not None and kind != RUN_LAYOUT.kind:
            raise ReviewflowError(f"{self.path} is a {kind} (`shard` wrote it), not a run directory: give the "
                                  "run directory `fit --out` wrote.")

    def refuse_unusable(self, overwrite: bool) -> None:
        """Refuse, before any work and changing nothing, what `locked` would refuse: a user's folder, another
        kind of directory, a complete run without `overwrite`."""
        ownership.check_ours(self.path, RUN_LAYOUT)
        self.refuse_complete(overwrite)

    def refuse_complete(self, overwrite: bool) -> None:
        if self.is_complete() and not overwrite:
            raise ReviewflowError(f"{self.path} already holds a complete run ({MODEL_FILE}). "
                                  "Pass --overwrite to train again, or choose another --out.")

    def claim(self, overwrite: bool) -> None:
        """Make the directory reviewflow's run directory; with `overwrite`, delete what reviewflow wrote in it.

        Refuses (deleting nothing) a directory that holds anything reviewflow does not write in a run.
        """
        ownership.check_ours(self.path, RUN_LAYOUT)
        if overwrite:  # the lock file stays: deleted, another process could lock a new one beside this one's
            ownership.remove_ours(self.path, RUN_LAYOUT, keep=(dir_lock.LOCK_FILE,))
        ownership.claim(self.path, RUN_LAYOUT)

    def interrupted_settings(self) -> dict | None:
        """The recorded settings of the interrupted run this directory holds; None if it holds none."""
        if not self.path.is_dir() or self.is_complete() or not self.has_config():
            return None
        try:
            return self.config().settings
        except (ReviewflowError, ValueError, KeyError, TypeError):  # not a run's config: prepare refuses it
            return None

    def prepare(self, settings_json: dict, overwrite: bool, earlier_defaults: dict | None = None) -> bool:
        """Create the directory; True when it holds an interrupted run with the same settings to resume.

        `earlier_defaults`: what a setting the interrupted run does not record meant when it was written (an
        earlier reviewflow, before the option existed).
        """
        ownership.check_ours(self.path, RUN_LAYOUT)
        self.refuse_complete(overwrite)
        self.claim(overwrite)
        if not self.has_config():
            return False
        previous = {**(earlier_defaults or {}), **self.config().settings}
        changed = sorted(key for key in settings_json if previous.get(key) != settings_json[key])
        if changed:
            raise ReviewflowError(f"{self.path} holds an interrupted run with other settings ({', '.join(changed)}). "
                                  "Re-run with the same options to resume, or pass --overwrite.")
        return (self / BACKUP_DIR).exists()

    # The end-to-end model.
    def save_model(self, model) -> None:
        """`model.save` to a temporary `.keras` name, then rename: a reader never sees half a file."""
        final = self / MODEL_FILE
        temporary = atomic.incomplete_keeping_suffix(final)
        model.save(temporary)
        atomic.commit(temporary, final)

    def export_serving(self, model) -> None:
        """A SavedModel with a `serve` signature: string tensor (batch,) -> probabilities (batch, 1)."""
        import keras
        import tensorflow as tf

        archive = keras.export.ExportArchive()
        # The endpoint tracks the variables it uses; only resources (the vocabulary's lookup tables) need
        # tracking. Tracking the model would also trace Keras's own serving signature of it (~0.4 s a fit).
        for resource in tf.train.TrackableView(model).descendants():
            if isinstance(resource, tf.saved_model.experimental.TrackableResource):
                archive.track(resource)
        archive.add_endpoint(name="serve", fn=model.call,
                             input_signature=[tf.TensorSpec(shape=(None,), dtype=tf.string, name="text")])
        export_dir = self / EXPORT_DIR
        temporary = atomic.incomplete_path(export_dir)
        shutil.rmtree(temporary, ignore_errors=True)
        archive.write_out(str(temporary), verbose=False)
        old = export_dir.with_name(export_dir.name + ".old")
        if export_dir.exists():
            export_dir.rename(old)
        temporary.rename(export_dir)
        shutil.rmtree(old, ignore_errors=True)

    def load_model(self):
        """The end-to-end model, loaded with Keras safe mode on (`models/saving.py`)."""
        from models import saving

        path = self / MODEL_FILE
        if not path.is_file():
            self.refuse_other_kind()
            raise ReviewflowError(f"{self.path}: no {MODEL_FILE}; the run is missing or incomplete. Run `fit` first.")
        written_by = self.config().versions if self.has_config() else None
        return saving.load_model(path, written_by)


REFIT = "Train the run again (fit --overwrite), or restore the file from a copy."
REEVALUATE = "Run `evaluate` on the run again, or restore the file from a copy."


def kept_epoch(model: str, rows: list[dict]) -> dict:
    """The history row of the epoch whose weights the run keeps: the lowest validation loss, or the last."""
    if model in zoo.MODELS and not zoo.spec(model).early_stopping:
        return rows[-1]
    return min(rows, key=lambda row: row.get("val_loss", float("inf")))


def read_json(path: Path, expected: type, fix: str, raw: bytes | None = None, line: int | None = None):
    """A run's JSON file (or, given `raw`, its line `line`) as `expected`, else a ReviewflowError that names the
    file, where it breaks and `fix` (a damaged or hand-edited file, not a traceback)."""
    where = f"{path}, line {line}" if line else str(path)
    try:
        obj = json.loads(path.read_bytes() if raw is None else raw)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise ReviewflowError(f"{where} is damaged, not JSON ({error}). {fix}") from None
    if not isinstance(obj, expected):
        shape = "object" if expected is dict else "list"
        raise ReviewflowError(f"{where} is damaged: a JSON {type(obj).__name__}, not a JSON {shape}. {fix}")
    return obj


def _as_csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
