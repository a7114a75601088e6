"""The command line, run as users run it: through click and as `python cli.py`."""

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

import cli
from pipeline.data_dir import DataDir
from pipeline.manifest import read_manifest
from models.run_dir import RunConfig, RunDir

ROOT = Path(__file__).resolve().parents[1]


def test_synth_and_shard_through_click(tmp_path):
    runner = CliRunner()
    train, test, out = tmp_path / "tr.ft.txt.gz", tmp_path / "te.ft.txt", tmp_path / "data"
    assert runner.invoke(cli.cli, ["synth", str(train), "--lines", "400", "--seed", "1",
                                   "--bad-fraction", "0.05"]).exit_code == 0
    assert runner.invoke(cli.cli, ["synth", str(test), "--lines", "100", "--seed", "2"]).exit_code == 0
    written = test.read_bytes()
    over = runner.invoke(cli.cli, ["synth", str(test), "--lines", "5"])   # a user's corpus could be there
    assert over.exit_code == 1 and "synth never replaces a file" in over.output and test.read_bytes() == written
    result = runner.invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(out),
                                     "--num-shards", "2", "--vocab-size", "300"])
    assert result.exit_code == 0, result.output
    assert "validation:" in result.output and "rejected:" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["test"]["num_examples"] == 100
    again = runner.invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(out)])
    assert again.exit_code == 1
    assert "--overwrite" in again.output and "Traceback" not in again.output


def test_a_bad_param_is_a_clear_error_not_a_traceback(data_dir, tmp_path):
    runner = CliRunner()
    for param, message in [("nonsense=3", "the ffn model takes no such argument"),
                           # Of the wrong kind: Keras said "'<=' not supported between instances of 'str' and
                           # 'int'", or "input_dim=1020097.0 (of type float)", or trained on a NaN dropout.
                           ("embedding_dim=abc", "--param embedding_dim='abc': the ffn model's embedding_dim is a "
                                                 "whole number (default: 64)."),
                           ("dense_units=1e3", "the ffn model's dense_units is a whole number"),
                           ("embedding_dim=-1", "the ffn model cannot be built")]:
        result = runner.invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(data_dir), "--out",
                                         str(tmp_path / "run"), "--epochs", "1", "--param", param])
        assert result.exit_code == 1 and message in result.output, result.output
        assert not (tmp_path / "run" / "model.keras").exists()
    for model, param, message in [("cnn", "kernel_sizes=3", "kernel_sizes is a list of whole numbers"),
                                  ("cnn_lstm", "dropout=NaN", "dropout is a finite number (default: 0.25)")]:
        result = runner.invoke(cli.cli, ["fit", "--model", model, "--data", str(data_dir), "--out",
                                         str(tmp_path / "run"), "--epochs", "1", "--param", param])
        assert result.exit_code == 1 and message in result.output, result.output
    # Refused as the model is built, not at the first step by TensorFlow ("Integer division by zero"), nor
    # trained on (a negative C rewards large weights; min_df 0 keeps what 1 keeps).
    for model, param, message in [("ngram_bag", "buckets=0", "buckets must be 1 or more, got 0"),
                                  ("linear", "c=-1", "c must be > 0"), ("linear", "min_df=0", "min_df must be 1")]:
        result = runner.invoke(cli.cli, ["fit", "--model", model, "--data", str(data_dir), "--out",
                                         str(tmp_path / "bag"), "--epochs", "1", "--param", param])
        assert result.exit_code == 1 and message in result.output, result.output
    result = runner.invoke(cli.cli, ["tune", "--model", "ffn", "--data", str(data_dir), "--out", str(tmp_path / "t"),
                                     "--param", "nonsense=3"])
    assert result.exit_code == 1 and "takes no such argument" in result.output
    result = runner.invoke(cli.cli, ["tune", "--model", "ffn", "--data", str(data_dir), "--out", str(tmp_path / "u"),
                                     "--tuner", "random", "--max-trials", "1", "--param", "embedding_dim=-1"])
    assert result.exit_code == 1 and "the ffn model cannot be built" in result.output, result.output
    assert not (tmp_path / "u" / "model.keras").exists()


def test_a_param_the_builder_refuses_leaves_the_run_an_overwrite_would_delete(data_dir, tmp_path):
    """Every input is checked before a delete: the model is built before RUN changes. fit --overwrite deleted
    the complete run, then failed building its replacement; tune failed every trial after deleting it."""
    run = tmp_path / "run"
    tiny = ["--data", str(data_dir), "--out", str(run), "--steps-per-epoch", "2", "--validation-steps", "1"]
    assert CliRunner().invoke(cli.cli, ["fit", "--model", "ffn", "--epochs", "1", *tiny]).exit_code == 0
    before = sorted(path.name for path in run.iterdir())
    for command in (["fit", "--model", "ffn", "--epochs", "1"],
                    ["tune", "--model", "ffn", "--tuner", "random", "--max-trials", "1", "--max-epochs", "1"]):
        result = CliRunner().invoke(cli.cli, [*command, *tiny, "--overwrite", "--param", "embedding_dim=-1"])
        assert result.exit_code == 1 and "the ffn model cannot be built" in result.output, result.output
        assert sorted(path.name for path in run.iterdir()) == before and (run / "model.keras").is_file()


def test_fit_into_a_log_file_writes_one_line_an_epoch(data_dir, tmp_path):
    """Keras draws its progress bar in place on any Linux output: a log file got every redraw, backspaces and
    colour codes included."""
    log = tmp_path / "fit.log"
    with log.open("w") as output:
        subprocess.run([sys.executable, "cli.py", "fit", "--model", "ffn", "--data", str(data_dir), "--out",
                        str(tmp_path / "run"), "--epochs", "2", "--steps-per-epoch", "3", "--validation-steps", "1"],
                       cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=True)
    text = log.read_text()
    assert "\x1b[" not in text and "\b" not in text
    epoch_lines = [line for line in text.splitlines() if "val_loss" in line]
    assert len(epoch_lines) == 2 and all(line.startswith("3/3 - ") for line in epoch_lines), text


def test_truncated_file_is_a_clear_error_with_nonzero_exit(tmp_path):
    corpus = tmp_path / "train.ft.txt.bz2"
    subprocess.run([sys.executable, "cli.py", "synth", str(corpus), "--lines", "3000"], cwd=ROOT, check=True,
                   capture_output=True)
    data = corpus.read_bytes()
    corpus.write_bytes(data[: len(data) // 2])
    held_out = tmp_path / "test.ft.txt"
    held_out.write_text("__label__1 a held-out review\n")
    result = subprocess.run([sys.executable, "cli.py", "shard", "--train", str(corpus), "--test", str(held_out),
                             "--out", str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1
    assert "Error: " in result.stderr and "train.ft.txt.bz2" in result.stderr and "truncated" in result.stderr
    assert "Traceback" not in result.stderr
    assert "absl::InitializeLog" not in result.stderr  # TensorFlow's start-up noise stays hidden
    assert not (tmp_path / "data" / "manifest.json").exists()


def test_help_needs_no_tensorflow_and_shard_warns_about_too_few_shards(tmp_path):
    done = subprocess.run([sys.executable, "cli.py", "fit", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "--strategy" in done.stdout
    assert "tensorflow" not in done.stderr.lower()
    runner = CliRunner()
    corpus, held_out = tmp_path / "c.ft.txt", tmp_path / "t.ft.txt"
    assert runner.invoke(cli.cli, ["synth", str(corpus), "--lines", "200"]).exit_code == 0
    assert runner.invoke(cli.cli, ["synth", str(held_out), "--lines", "50", "--seed", "9"]).exit_code == 0
    result = runner.invoke(cli.cli, ["shard", "--train", str(corpus), "--test", str(held_out), "--out",
                                     str(tmp_path / "d"), "--num-shards", "2", "--workers", "3"])
    assert result.exit_code == 0
    assert "warning: train has 2 shard(s) for 3 workers" in result.output


def test_help_synth_compare_stats_and_verify_of_a_data_directory_load_no_tensorflow(tmp_path, data_dir):
    """`--help`, `synth`, `compare`, `stats DATA` and `verify` need none: TensorFlow's start-up is ~4 s of each
    otherwise (the demo runs synth 4 times; stats of a data directory reads its manifest; verify walks the
    shards' records itself)."""
    run = tmp_path / "cnn"
    run.mkdir()
    RunDir(run).write_config(RunConfig(settings={"model": "cnn"}, global_batch_size=8, replicas=1, vocab_size=9,
                                       vocab_sha256="0", data_manifest_sha256="0", parameters=10, versions={}))
    RunDir(run).write_history([{"epoch": 1, "val_accuracy": 0.75, "val_loss": 0.5, "train_seconds": 0.8,
                                "examples_per_second": 100.0}])
    RunDir(run).write_metrics({"accuracy": 0.7, "f1": 0.5, "roc_auc": 0.5})
    script = f"""
import sys
from click.testing import CliRunner
import cli
for args in (["fit", "--help"], ["synth", {str(tmp_path / "c.ft.txt")!r}, "--lines", "20"],
             ["compare", {str(run)!r}, "--out", {str(tmp_path / "cmp")!r}],
             ["stats", {str(data_dir)!r}, "--plot", {str(tmp_path / "lengths.png")!r}], ["verify", {str(data_dir)!r}]):
    result = CliRunner().invoke(cli.cli, args)
    print(result.exit_code, result.output.splitlines()[{{"compare": -2, "stats": 0}}.get(args[0], -1)])
print("tensorflow loaded:", "tensorflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["0", "0", "0", "0", "0"], done.stdout + done.stderr
    # compare's row: seconds to one decimal (0.8 read "0.8000", as a share would), accuracies to four
    assert lines[2].split()[1:] == ["cnn", "10", "1", "0.8", "100", "0.7500", "0.7000", "0.5000", "0.5000"], lines
    train = DataDir.open(data_dir).num_examples("train")
    assert lines[3].startswith(f"0 train: {train:,} reviews, negative "), lines  # the manifest's counts
    assert lines[4] == "0 all 11 files match the manifest"   # 9 shards, the vocabulary and its counts
    assert lines[5] == "tensorflow loaded: False"
    assert (tmp_path / "lengths.png").stat().st_size > 1000
    assert len((tmp_path / "c.ft.txt").read_text().splitlines()) == 20
    assert (tmp_path / "cmp" / "comparison.png").is_file()


def test_installed_entry_point_flushes_output_and_keeps_exit_codes(tmp_path):
    # main() leaves with os._exit (skipping TensorFlow's slow teardown): piped output must still
    # arrive whole, and exit codes must be click's.
    corpus, held_out = tmp_path / "c.ft.txt", tmp_path / "t.ft.txt"
    subprocess.run([sys.executable, "cli.py", "synth", str(corpus), "--lines", "300"], cwd=ROOT, check=True)
    held_out.write_text("__label__2 a held-out review\n")
    done = subprocess.run([sys.executable, "cli.py", "shard", "--train", str(corpus), "--test", str(held_out),
                           "--out", str(tmp_path / "d"), "--num-shards", "1"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("done in ") and "vocabulary:" in done.stdout
    again = subprocess.run([sys.executable, "cli.py", "shard", "--train", str(corpus), "--test", str(held_out),
                            "--out", str(tmp_path / "d")], cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    usage = subprocess.run([sys.executable, "cli.py", "shard"], cwd=ROOT, capture_output=True, text=True)
    assert usage.returncode == 2 and "Missing option" in usage.stderr


def test_a_reader_that_goes_away_ends_the_command_quietly(data_dir):
    # `reviewflow stats DIR | head -1`: the pipe closes before the output is written. A shell's own
    # commands die of SIGPIPE (exit 141) and say nothing; an "Error: Broken pipe" would be noise.
    process = subprocess.Popen([sys.executable, "cli.py", "stats", str(data_dir)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # the reader is gone before the first line
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 141, stderr
    assert "Error" not in stderr and "Traceback" not in stderr, stderr


def test_study_names_an_empty_or_unknown_model_list(data_dir, tmp_path):
    for models, said in [("", "no model given"), (" , ", "no model given"), ("cnn,cnnn", "unknown model(s) ['cnnn']")]:
        result = CliRunner().invoke(cli.cli, ["study", "--data", str(data_dir), "--out", str(tmp_path / "s"),
                                              "--models", models])
        assert result.exit_code == 2 and said in result.output, result.output
        assert not (tmp_path / "s").exists()


def test_tune_and_study_refuse_multi_worker_and_say_what_to_run_instead(data_dir, tmp_path):
    # Every worker of a cluster runs the command whole: each ran the whole search into the same --out, the second
    # refused by the first's lock and the first then waiting for it ("Failed to send RPC to coordination service").
    for command, instead in [(["tune", "--model", "ffn"], "then train its best configuration"),
                             (["study", "--models", "ffn"], "then `compare` or `report` the runs")]:
        out = tmp_path / command[0]
        result = CliRunner().invoke(cli.cli, [*command, "--data", str(data_dir), "--out", str(out),
                                              "--strategy", "multi-worker"])
        assert result.exit_code == 2 and "multi-worker is for `fit`" in result.output, result.output
        assert instead in result.output and "`fit --strategy multi-worker`" in result.output and not out.exists()


def test_a_cluster_machine_s_tf_config_leaves_every_other_command_alone(corpus_files, tmp_path):
    # TF_CONFIG set in a cluster machine's shell: every command created the cluster's strategy at start-up and
    # waited for its other workers to connect, for ever (`predict` waited 10 minutes, deaf to SIGTERM). Only
    # `fit --strategy multi-worker` joins a cluster now; its own tests run two workers (test_training.py).
    train, test = corpus_files
    peers = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 1}}
    sharded = subprocess.run([sys.executable, "cli.py", "shard", "--train", str(train), "--test", str(test), "--out",
                              str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "TF_CONFIG": json.dumps(peers)})  # a bound for a hang
    assert sharded.returncode == 0, sharded.stderr
    assert DataDir.open(tmp_path / "data").num_examples("train") > 0


def test_a_test_fraction_that_holds_out_no_review_is_warned_of(tmp_path):
    train = tmp_path / "few.ft.txt"
    train.write_text("".join(f"__label__2 good fine {i}\n__label__1 bad awful {i}\n" for i in range(12)))
    sharded = CliRunner().invoke(cli.cli, ["shard", "--train", str(train), "--test-fraction", "0.001",
                                           "--out", str(tmp_path / "data")])
    assert sharded.exit_code == 0 and read_manifest(tmp_path / "data").splits["test"].num_examples == 0
    assert "warning: the test split is empty (--test-fraction 0.001 held out none" in sharded.stderr


def test_a_data_directory_without_validation_reviews_is_refused_before_training(corpus_files, tmp_path):
    # --val-fraction 0 is a valid shard; fit trained on it, then failed at the end (KeyError 'val_accuracy').
    runner = CliRunner()
    train, test = corpus_files
    data = tmp_path / "data"
    sharded = runner.invoke(cli.cli, ["shard", "--train", str(train), "--test", str(test), "--out", str(data),
                                      "--val-fraction", "0"])
    assert sharded.exit_code == 0 and "warning: the validation split is empty" in sharded.output
    assert "test split is empty" not in sharded.output
    for command in (["fit", "--model", "ngram_bag"], ["tune", "--model", "ngram_bag"], ["study", "--models", "ffn"]):
        out = tmp_path / command[0]
        result = runner.invoke(cli.cli, [*command, "--data", str(data), "--out", str(out), "--epochs", "1"])
        assert result.exit_code == 1 and f"{data} has no validation reviews" in result.output, result.output
        assert "--val-fraction 0.2" in result.output and not out.exists()


def test_float_options_refuse_nan_and_inf_and_seeds_their_generators_cannot_take(tmp_path):
    """click's ranges let nan through every bound (it compares false), and inf through an open one: a
    `--label-noise nan` corpus was written, `--learning-rate nan` trained. A negative seed was a traceback."""
    for seed in (["synth", str(tmp_path / "s.txt"), "--seed", "-1"],
                 ["fit", "--model", "ffn", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--seed",
                  str(2**32)]):
        result = CliRunner().invoke(cli.cli, seed)
        assert result.exit_code == 2 and "is not in the range 0<=x<=4294967295" in result.output, result.output
    for args in (["synth", str(tmp_path / "a.txt"), "--label-noise", "nan"],
                 ["synth", str(tmp_path / "b.txt"), "--mean-words", "inf"],
                 ["fit", "--model", "ffn", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                  "--learning-rate", "nan"],
                 ["serve", str(tmp_path), "--max-wait-ms", "inf"]):
        result = CliRunner().invoke(cli.cli, args)
        assert result.exit_code == 2 and "is not a finite number" in result.output, result.output
    assert not list(tmp_path.iterdir())
    # Integrated gradients' steps are capped: a typo of 10**8 explained one review for hours.
    result = CliRunner().invoke(cli.cli, ["predict", str(tmp_path), "good", "--explain", "--steps", "100000000"])
    assert result.exit_code == 2 and "is not in the range 1<=x<=10000" in result.output, result.output
