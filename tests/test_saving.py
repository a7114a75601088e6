"""Every run loads anywhere: each model, fitted by one command, read by every command in a new process.

A run is written by one process and read by others, as users run them; a class
registered only because the writing process imported it would go unnoticed in
a test that fits and loads in one process. So `fit` runs here (through click)
and every command that reads its run is a subprocess; the README's Python
snippet and the SavedModel are loaded in a process of their own.
"""

import itertools
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli as main

from models import zoo
from models.zoo.spec import OPTIMIZERS
from conftest import (TOKEN_ID_MODELS, Said, cli_in_a_new_process, easy_data, printed_json, said_by,
                      start_cli_commands, start_python)

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Great: excellent, I love it", "Awful: terrible waste, it broke", "", "café über naïve"]
TINY = ["--epochs", "1", "--max-len", "24", "--steps-per-epoch", "4", "--validation-steps", "2", "--seed", "1"]
PARAMS = {"hybrid": ["filters=8", "dense_units=8", "lstm_units=8"],
          "hybrid_split": ["filters=8", "dense_units=8", "lstm_units=8"],
          "ngram_bag": ["buckets=4096"], "linear": ["buckets=4096"], "transformer": ["num_layers=1"]}
# A preset's model needs a checkpoint: tests/test_pretrained.py reads its runs in new processes the same way.
MATRIX = TOKEN_ID_MODELS
# Each optimizer `fit` accepts, dealt out over the models in turn (every one on one model at least).
OPTIMIZER = dict(zip(MATRIX, itertools.cycle(OPTIMIZERS)))


def readme_snippet() -> str:
    """The README's Python example of loading a run, exactly as a user copies it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- load-snippet -->\n```python\n(.*?)```", readme, re.S).group(1)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return easy_data(tmp_path_factory.mktemp("saving"), 300, 12, test_lines=60, vocab_size=500)


def test_every_optimizer_fit_accepts_is_covered():
    assert set(OPTIMIZER.values()) == set(OPTIMIZERS) and set(OPTIMIZER) == set(MATRIX)


@pytest.fixture(scope="module")
def fitted_runs(tiny_data, tmp_path_factory):
    """Every model of the matrix fitted here, through click, with its optimizer: model name -> run directory."""
    runs = {}
    for name in MATRIX:
        run = tmp_path_factory.mktemp("runs") / name
        options = [arg for param in PARAMS.get(name, []) for arg in ("--param", param)]
        if OPTIMIZER[name]:
            options += ["--optimizer", OPTIMIZER[name]]
        fitted = CliRunner().invoke(main.cli, ["fit", "--model", name, "--data", str(tiny_data), "--out", str(run),
                                               "--quiet", *TINY, *options])  # here: what reads it runs elsewhere
        assert fitted.exit_code == 0, fitted.output
        runs[name] = run
    return runs


def readers(run: Path, data: Path) -> dict[str, list]:
    """The commands that read a run, by what the test calls them."""
    return {"predict": ["predict", run, *TEXTS, "--format", "jsonl"], "embed": ["embed", run, "great movie"],
            "evaluate": ["evaluate", run, "--data", data],
            "explain": ["predict", run, TEXTS[0], "--explain", "--format", "jsonl", "--steps", "16"]}


def served_script(fitted_runs) -> str:
    """Every run's SavedModel in a fresh interpreter with only TensorFlow and tensorflow-text imported, as a
    serving process has; then the README's snippet, whose own imports are the first of reviewflow's."""
    runs = {name: str(run) for name, run in fitted_runs.items()}
    script = ("import json, sys\nimport tensorflow as tf\nimport tensorflow_text\n"
              f"runs = {runs!r}\nserved = {{}}\nexports = {{}}\n"
              "for name, run in runs.items():\n"
              "    exports[name] = tf.saved_model.load(run + '/export')  # kept: its variables live with it\n"
              f"    served[name] = exports[name].serve(tf.constant({TEXTS!r})).numpy().reshape(-1).tolist()\n"
              "assert not [m for m in sys.modules if m.split('.')[0] in ('models', 'pipeline', 'cli')]\n"
              "loaded = {}\n"
              "for name, run in runs.items():\n"
              + "".join(f"    {line}\n" for line in readme_snippet().replace('"runs/ng', 'run + "').splitlines()) +
              f"    loaded[name] = model.predict(tf.constant({TEXTS!r}), verbose=0).reshape(-1).tolist()\n"
              "print(json.dumps([served, loaded]))")
    return script


@pytest.fixture(scope="module")
def read_back_and_served(fitted_runs, tiny_data):
    """Both fresh interpreters at once (each spends most of its ~30 s importing and loading): what each reader
    said of each run (model name -> reader -> Said), and the served and loaded probabilities."""
    # One new process for every reader of every run, which never fitted a model: loading imports every
    # class-registering module itself (models/saving.py), so the first load in a fresh interpreter is the test.
    commands = {name: readers(run, tiny_data) for name, run in fitted_runs.items()}
    reading = start_cli_commands(*[command for each in commands.values() for command in each.values()])
    serving = start_python(served_script(fitted_runs))
    said = iter(said_by(reading, check=False))
    read_back = {name: {key: next(said) for key in each} for name, each in commands.items()}
    return read_back, printed_json(serving)


def check_run(name: str, run: Path, said: dict[str, Said], served: dict) -> None:
    with zipfile.ZipFile(run / "model.keras") as archive:  # a deployed classifier carries no optimizer
        assert not any("optimizer" in entry for entry in archive.namelist())
    assert set(json.loads((run / "config.json").read_text())["versions"]) == {
        "reviewflow", "keras", "tensorflow", "tensorflow_text"}
    assert said["evaluate"].exit_code == 0, said["evaluate"].stderr
    assert json.loads((run / "metrics.json").read_text())["num_examples"] == 60
    assert said["predict"].exit_code == 0, said["predict"].stderr
    predicted = [json.loads(line)["p_positive"] for line in said["predict"].stdout.splitlines()]
    assert len(predicted) == len(TEXTS)
    embed = said["embed"]
    if "embedding_dim" in zoo.parameters(name):
        assert embed.exit_code == 0 and "dimensions" in embed.stdout, embed.stderr
    else:  # linear: said so, not an empty success
        assert embed.exit_code == 1 and "has no embedding layer" in embed.stderr, embed.stdout + embed.stderr
    assert said["explain"].exit_code == 0, said["explain"].stderr
    explained = json.loads(said["explain"].stdout)
    assert explained["p_positive"] == predicted[0]
    explanation = explained["explanation"]
    assert explanation["method"] == ("exact" if name in ("linear", "ngram_bag") else "integrated_gradients")
    gap = abs(explanation["logit"] - explanation["reference"])
    assert explanation["completeness_error"] <= (1e-4 if explanation["method"] == "exact" else 0.05 * max(1.0, gap))
    assert [token["text"] for token in explanation["tokens"]] == ["Great", "excellent", "I", "love", "it"]
    assert [TEXTS[0][token["start"]:token["end"]] for token in explanation["tokens"]] == [
        token["text"] for token in explanation["tokens"]]
    np.testing.assert_allclose(served[0][name], predicted, atol=1e-5)
    np.testing.assert_allclose(served[1][name], predicted, atol=1e-5)


def test_every_run_loads_in_every_command_of_a_new_process(fitted_runs, read_back_and_served):
    """One test for the whole matrix (pytest-xdist would otherwise fit it once per worker); each model's
    failure is named."""
    read_back, served = read_back_and_served
    failures = {}
    for name in sorted(MATRIX):
        try:
            check_run(name, fitted_runs[name], read_back[name], served)
        except AssertionError as exc:
            failures[name] = str(exc)[:1500]
    assert not failures, "\n".join(f"{name}: {message}" for name, message in failures.items())


def test_tune_compare_and_report_read_runs_in_new_processes(tiny_data, tmp_path):
    tuned = tmp_path / "tuned"
    tuning = CliRunner().invoke(main.cli, ["tune", "--model", "ngram_bag", "--data", str(tiny_data), "--out",
                                           str(tuned), "--tuner", "random", "--max-trials", "1", "--max-epochs",
                                           "1", "--param", "buckets=4096", *TINY])  # here: its readers elsewhere
    assert tuning.exit_code == 0, tuning.output
    _, predicted, compared, _ = cli_in_a_new_process(
        ["evaluate", tuned, "--data", tiny_data], ["predict", tuned, *TEXTS], ["compare", tuned],
        ["report", tuned, "--data", tiny_data, "--out", tmp_path / "report"])
    assert json.loads((tuned / "metrics.json").read_text())["num_examples"] == 60
    assert len(predicted.stdout.splitlines()) == len(TEXTS)
    assert "ngram_bag" in compared.stdout
    assert "ngram_bag" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
