"""fit's own callbacks on a real model: history rows that survive a resume, backups replaced atomically."""

import keras
import numpy as np

from models.callbacks import AtomicBackupAndRestore, EpochHistory
from models.run_dir import RunDir


def tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    return model


DATA = (np.random.default_rng(0).normal(size=(32, 3)).astype("float32"), np.ones((32, 1), "float32"))


def test_history_keeps_earlier_rows_and_a_rerun_epoch_replaces_its_own(tmp_path):
    run = RunDir(tmp_path)
    run.write_history([{"epoch": 1, "loss": 9.0}, {"epoch": 2, "loss": 8.0}])   # written before a resume
    tiny_model().fit(*DATA, validation_data=DATA, epochs=3, initial_epoch=1, verbose=0,
                     callbacks=[EpochHistory(run, examples_per_epoch=32)])
    rows = run.history()
    assert [row["epoch"] for row in rows] == [1, 2, 3] and rows[0]["loss"] == 9.0 and rows[1]["loss"] != 8.0
    assert all(row["examples_per_second"] > 0 and "val_loss" in row for row in rows[1:])


def test_the_backup_leaves_no_temporary_file_and_restores_the_epoch(tmp_path):
    backup = tmp_path / "backup"

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt  # as a kill would stop it, after the epoch's backup

    try:
        tiny_model().fit(*DATA, epochs=3, verbose=0, callbacks=[AtomicBackupAndRestore(str(backup)),
                                                               StopAfterFirstEpoch()])
    except KeyboardInterrupt:
        pass
    assert not list(backup.rglob("*.incomplete*")) and list(backup.rglob("*.weights.h5"))
    seen = []

    class Epochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    tiny_model().fit(*DATA, epochs=3, verbose=0, callbacks=[AtomicBackupAndRestore(str(backup)), Epochs()])
    assert seen == [1, 2]   # resumed after the first epoch
