"""`tune`: a tiny KerasTuner search that streams from the shards, resumes after a kill, ends as a RUN."""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from models.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-len", "32", "--epochs", "1", "--max-epochs", "1", "--seed", "3"]


@pytest.mark.slow
def test_a_tiny_search_ends_as_a_complete_run_with_its_trials(data_dir, tmp_path):
    out = tmp_path / "tuned"
    result = CliRunner().invoke(cli.cli, ["tune", "--model", "ngram_bag", "--data", str(data_dir), "--out", str(out),
                                          "--tuner", "random", "--max-trials", "2", "--param", "buckets=1024",
                                          *FAST])
    assert result.exit_code == 0, result.output
    run = RunDir(out)
    assert run.is_complete() and (out / "export" / "saved_model.pb").exists() and run.history()
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert len(rows) == 2 and {"learning_rate", "batch_size", "optimizer", "ngrams", "val_loss", "val_accuracy",
                               "seconds"} <= set(rows[0])
    assert all(row["buckets"] == "1024" for row in rows)  # what the user fixed is not searched
    trials = json.loads((out / "trials.json").read_text())
    assert trials["tuner"] == "random" and len(trials["trials"]) == 2
    best = trials["trials"][0]  # best validation loss first, trained as the run
    settings = run.config().settings
    assert settings["learning_rate"] == pytest.approx(best["learning_rate"])
    assert settings["batch_size"] == best["batch_size"] and settings["hparams"]["ngrams"] == best["ngrams"]
    assert "val_loss" in result.output and "best validation accuracy" in result.output
    # The best trial's line reads as the table does (it printed a dict: `'val_loss': np.float64(0.69...)`).
    assert f"best of 2 trials: trial {rows[0]['trial']}: " in result.output and "np.float64" not in result.output
    assert f"val_loss {rows[0]['val_loss']}, " in result.output


def test_no_searched_batch_leaves_an_epoch_with_too_few_steps():
    import keras_tuner as kt

    from models import training, tuning

    base = training.FitSettings(model="linear", data="d", out="o")

    def batch_sizes(num_train_examples):
        hp = kt.HyperParameters()
        tuning.training_space(hp, base, num_train_examples)
        return hp.space[[p.name for p in hp.space].index("batch_size")].values

    assert batch_sizes(16_000) == [32, 64, 128, 256]
    assert batch_sizes(411) == [12]  # 411 reviews in 32 steps, as fit's default batch for them
    assert batch_sizes(3_000) == [32, 64, 93]


def test_a_search_whose_trials_all_fail_is_a_clear_error(data_dir, tmp_path, monkeypatch):
    # Injected fault: every trial's training raises (a real tuner, real shards). The search must not go on
    # to train "the best" of no finished trial, nor end in KerasTuner's traceback.
    from models import tuning

    def failing_fit(self, hp, model, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(tuning.ZooHyperModel, "fit", failing_fit)
    out = tmp_path / "failing"
    for trials in ("1", "4"):  # one failed trial; and KerasTuner giving up after three in a row
        result = CliRunner().invoke(cli.cli, ["tune", "--model", "ffn", "--data", str(data_dir), "--out", str(out),
                                              "--tuner", "random", "--max-trials", trials, *FAST])
        assert result.exit_code == 1, result.output
        last_line = result.stderr.strip().splitlines()[-1]  # (KerasTuner logs each failed trial's traceback first)
        assert last_line.startswith("Error: no trial of the search finished") and "No space left" in last_line
        assert not RunDir(out).is_complete() and not (out / "trials.csv").exists()


@pytest.mark.slow
def test_hyperband_is_the_default_and_max_trials_caps_it(data_dir, tmp_path):
    out = tmp_path / "hb"
    result = CliRunner().invoke(cli.cli, ["tune", "--model", "linear", "--data", str(data_dir), "--out", str(out),
                                          "--max-trials", "2", "--param", "buckets=1024", *FAST, "--max-epochs", "3"])
    assert result.exit_code == 0, result.output
    trials = json.loads((out / "trials.json").read_text())
    assert trials["tuner"] == "hyperband" and len(trials["trials"]) == 2  # its plan (max-epochs 3) holds 4
    assert RunDir(out).is_complete()


def oracle_state(out: Path) -> dict:
    """KerasTuner's own record of the search: trials in the order they started and ended ({} until written)."""
    try:
        return json.loads((out / "tuner" / "ffn" / "oracle.json").read_text())
    except (FileNotFoundError, ValueError):  # not yet written, or caught mid-write
        return {}


@pytest.mark.slow
def test_a_killed_search_resumes_where_it_stopped(data_dir, tmp_path):
    out = tmp_path / "killed"
    command = [sys.executable, "cli.py", "tune", "--model", "ffn", "--data", str(data_dir), "--out", str(out),
               "--tuner", "random", "--max-trials", "3", *FAST]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240  # a guard against a hung search, not a measurement
    while not oracle_state(out).get("end_order") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = oracle_state(out).get("end_order")
    assert finished, "the first trial never finished"
    assert not RunDir(out).is_complete()
    # What a finished trial left; a trial run again would write its checkpoint anew.
    checkpoints = {trial_id: out / "tuner" / "ffn" / f"trial_{trial_id}" / "checkpoint.weights.h5"
                   for trial_id in finished}
    before = {trial_id: (path.stat().st_mtime_ns, path.read_bytes()) for trial_id, path in checkpoints.items()}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert len(trials) == 3 and len({trial["trial"] for trial in trials}) == 3
    started = oracle_state(out)["start_order"]
    assert all(started.count(trial_id) == 1 for trial_id in finished)  # finished trials were not run again
    assert {trial_id: (path.stat().st_mtime_ns, path.read_bytes()) for trial_id, path in checkpoints.items()} == before
    assert RunDir(out).is_complete()
