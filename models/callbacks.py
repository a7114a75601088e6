"""Callbacks of our own: per-epoch history that survives a resume, and checkpoints written atomically."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import keras

from models.run_dir import RunDir, pending_checkpoint, pending_epoch
from pipeline import atomic


class StopOnInvalidLoss(keras.callbacks.TerminateOnNaN):
    """Keras's TerminateOnNaN without its "Batch N: Invalid loss" line on stdout, which `--quiet` kept: `fit`
    says that training diverged itself (`training.diverged`), on stderr, with the fix."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True


class EpochHistory(keras.callbacks.Callback):
    """Writes `history.json` and `history.csv` after every epoch, atomically.

    Rows of epochs before a resume are kept (BackupAndRestore restarts Keras's
    own History); a re-run epoch replaces its old row. Adds the training time
    of each epoch and examples per second.
    """

    def __init__(self, run: RunDir, examples_per_epoch: int):
        super().__init__()
        self.run = run
        self.examples_per_epoch = examples_per_epoch
        self.rows = run.history()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._train_seconds = None

    def on_test_begin(self, logs=None):
        if self._train_seconds is None:  # validation starts: the training part is over
            self._train_seconds = time.perf_counter() - self._started

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        train_seconds = self._train_seconds or seconds
        row = {"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()},
               "seconds": round(seconds, 3), "train_seconds": round(train_seconds, 3),
               "examples_per_second": round(self.examples_per_epoch / train_seconds, 1)}
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        self.run.write_history(self.rows)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore whose files are replaced atomically.

    Keras writes `latest.weights.h5` in place: a process killed during that
    write leaves a truncated file, and the resume then fails to open it (the
    fault-injection suite caught this). Here the weights go to a temporary
    name first and are renamed, then the epoch metadata likewise; a kill
    between the two renames costs at most one epoch trained again.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        temporary = self._weights_path[: -len(".weights.h5")] + ".incomplete.weights.h5"
        self.model.save_weights(filepath=temporary, overwrite=True)
        atomic.commit(Path(temporary), Path(self._weights_path))
        atomic.write_json(Path(self._training_metadata_path),
                          {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def restore(self, model: keras.Model) -> None:
        """Load the backed-up weights and optimizer state into `model`, without training (what `fit` does at the
        start of a resumed training)."""
        self.set_model(model)
        self._load_model()


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint whose file is replaced atomically, and only by an epoch that is backed up.

    Keras writes the `.keras` file in place: a process killed during that write left half a zip, which the
    resumed run read at its end for the best epoch's weights (`finish_run`) and could not load, so the run
    could never complete. Here the model goes to a temporary name first and is renamed.

    A better epoch's model then waits under a pending name (`best.epoch-5.pending.keras`) and becomes best.keras
    once that epoch's backup is written (`backed_up_epochs`, read as the next epoch begins and as training ends).
    Taken at once, a kill before the backup left best.keras holding an epoch that the resume trains again: where
    the second attempt came out worse, the killed one stayed the run's model while another epoch's row was named
    best. `backed_up_epochs` None: no backup, so nothing waits.
    """

    def __init__(self, filepath: str, backed_up_epochs: Callable[[], int] | None, **kwargs):
        super().__init__(filepath, **kwargs)
        self.backed_up_epochs = backed_up_epochs

    def _get_file_path(self, epoch, batch, logs):
        return str(atomic.incomplete_keeping_suffix(super()._get_file_path(epoch, batch, logs)))

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        atomic.incomplete_keeping_suffix(self.filepath).unlink(missing_ok=True)  # a killed run's half file
        self._promote_backed_up(drop_others=True)  # a killed attempt's epoch trains again: its model is dropped

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._promote_backed_up()

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        self._promote_backed_up()

    def _save_model(self, epoch, batch, logs):
        temporary = Path(self._get_file_path(epoch, batch, logs))
        super()._save_model(epoch, batch, logs)
        if temporary.exists():  # saved (only an improvement is)
            for older in self._pending():
                older.unlink()
            atomic.commit(temporary, pending_checkpoint(Path(self.filepath), epoch + 1))
            if self.backed_up_epochs is None:
                self._promote_backed_up()

    def _pending(self) -> list[Path]:
        return sorted(Path(self.filepath).parent.glob(pending_checkpoint(Path(self.filepath), "*").name))

    def _promote_backed_up(self, drop_others: bool = False) -> None:
        """The pending model of a backed-up epoch becomes best.keras; with `drop_others`, a later one is removed."""
        waiting = self._pending()
        backed_up = self.backed_up_epochs() if waiting and self.backed_up_epochs is not None else None
        for pending in waiting:
            if backed_up is None or pending_epoch(pending) <= backed_up:
                atomic.commit(pending, Path(self.filepath))
            elif drop_others:
                pending.unlink()
