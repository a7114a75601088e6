"""`--overwrite` deletes only what reviewflow wrote: the ownership layouts, then every command that takes it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import cli
from models.run_dir import RUN_LAYOUT, RunDir
from models.training import FitSettings, fit
from pipeline import ownership
from pipeline.errors import ReviewflowError
from pipeline.shard.output_dir import DATA_LAYOUT

ROOT = Path(__file__).resolve().parents[1]


def user_folder(path: Path) -> dict[str, str]:
    """A user's folder whose names look like reviewflow's: notes.md.incomplete, beam-temp-photos/, config.json."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.md.incomplete").write_text("draft")
    (path / "beam-temp-photos").mkdir()
    (path / "beam-temp-photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (path / "config.json").write_text('{"theme": "dark"}')
    return snapshot(path)


def snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): (p.read_bytes().hex() if p.is_file() else "dir") for p in path.rglob("*")}


def test_layouts_know_their_own_names_and_no_lookalikes():
    assert DATA_LAYOUT.writes("train-00001-of-00004.tfrecord.gz.incomplete")
    assert DATA_LAYOUT.writes("beam-temp-rejects-" + "0a" * 16) and DATA_LAYOUT.writes(".reviewflow")
    assert DATA_LAYOUT.writes(".reviewflow.incomplete")  # a run killed while it wrote the marker
    for name in ("notes.md.incomplete", "beam-temp-photos", "vocab.txt.bak", "train-1-of-2.tfrecord"):
        assert not DATA_LAYOUT.writes(name), name
    assert RUN_LAYOUT.writes("model.incomplete.keras") and RUN_LAYOUT.writes("history.csv.incomplete")
    assert not RUN_LAYOUT.writes("model.keras.bak") and not RUN_LAYOUT.writes("notes.txt")


def test_a_users_folder_is_refused_and_left_as_it_was(tmp_path):
    folder = tmp_path / "projects"
    before = user_folder(folder)
    for layout in (DATA_LAYOUT, RUN_LAYOUT):
        with pytest.raises(ReviewflowError, match="reviewflow did not write"):
            ownership.check_ours(folder, layout)
        ownership.remove_ours(folder, layout)  # unmarked: deletes nothing even when called
    assert snapshot(folder) == before


def test_an_unmarked_folder_of_lookalike_names_is_not_taken_for_ours(tmp_path):
    folder = tmp_path / "lookalike"
    folder.mkdir()
    (folder / "history.json").write_text("[]")  # a run's name, but no marker and no run's config.json
    (folder / "config.json").write_text('{"theme": "dark"}')
    with pytest.raises(ReviewflowError, match="no .reviewflow marker"):
        ownership.check_ours(folder, RUN_LAYOUT)


def test_an_older_reviewflows_run_without_the_marker_is_recognized(tmp_path):
    run = tmp_path / "old-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"settings": {}, "versions": {}}))
    (run / "logs").mkdir()
    assert ownership.check_ours(run, RUN_LAYOUT)
    ownership.remove_ours(run, RUN_LAYOUT)
    assert list(run.iterdir()) == []


def test_fit_and_tune_overwrite_refuse_a_users_folder_and_the_working_directory(data_dir, tmp_path, monkeypatch):
    folder = tmp_path / "projects"
    before = user_folder(folder)
    runner = CliRunner()
    for command in ("fit", "tune"):
        result = runner.invoke(cli.cli, [command, "--model", "linear", "--data", str(data_dir), "--out", str(folder),
                                         "--epochs", "1", "--overwrite"])
        assert result.exit_code == 1 and "reviewflow did not write" in result.output, result.output
        assert "Traceback" not in result.output and snapshot(folder) == before
    monkeypatch.chdir(folder)  # --out . is the user's working directory
    result = runner.invoke(cli.cli, ["fit", "--model", "linear", "--data", str(data_dir), "--out", ".",
                                     "--overwrite"])
    assert result.exit_code == 1 and snapshot(folder) == before


def test_fit_and_tune_refuse_a_users_folder_or_a_complete_run_before_any_work(tmp_path):
    """Before any work: without TensorFlow loaded (~4 s), a data directory hashed or a model built (a preset or
    a file of vectors loaded). The data here is no data directory: the --out is what is wrong, and said first."""
    folder, run, not_data = tmp_path / "projects", tmp_path / "run", tmp_path / "typo"
    user_folder(folder)
    not_data.mkdir()
    ownership.claim(run, RUN_LAYOUT)
    (run / "model.keras").write_bytes(b"a complete run")
    (run / "config.json").write_text(json.dumps({"settings": {}, "versions": {}}))
    script = f"""
import sys
from click.testing import CliRunner
import cli
for command, out in [("fit", {str(folder)!r}), ("tune", {str(folder)!r}), ("fit", {str(run)!r}),
                     ("tune", {str(run)!r})]:
    result = CliRunner().invoke(cli.cli, [command, "--model", "ffn", "--data", {str(not_data)!r}, "--out", out])
    print(command, result.exit_code, result.output.strip().splitlines()[-1])
print("tensorflow loaded:", "tensorflow" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [["fit", "1"], ["tune", "1"], ["fit", "1"], ["tune", "1"]]
    assert all("reviewflow did not write" in line for line in lines[:2]), lines
    assert all("already holds a complete run" in line for line in lines[2:4]), lines
    assert lines[4] == "tensorflow loaded: False"
    with pytest.raises(ReviewflowError, match="already holds a complete run"):  # the library's fit, as early
        fit(FitSettings(model="ffn", data=not_data, out=run))


def test_a_data_directory_given_as_a_runs_out_is_named_as_such_and_left_as_it_was(data_dir, tmp_path):
    before = snapshot(data_dir)
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "linear", "--data", str(data_dir), "--out",
                                          str(data_dir), "--epochs", "1", "--overwrite"])
    assert result.exit_code == 1, result.output
    assert f"{data_dir} is a data directory reviewflow wrote, not a run directory" in result.output
    assert snapshot(data_dir) == before
    run = tmp_path / "run"
    ownership.claim(run, RUN_LAYOUT)
    with pytest.raises(ReviewflowError, match="is a run directory reviewflow wrote, not a data directory"):
        ownership.check_ours(run, DATA_LAYOUT)


def test_tune_checks_its_data_before_it_deletes_anything(tmp_path):
    run = tmp_path / "run"
    ownership.claim(run, RUN_LAYOUT)
    (run / "config.json").write_text(json.dumps({"settings": {}, "versions": {}}))
    not_data = tmp_path / "typo"
    not_data.mkdir()
    result = CliRunner().invoke(cli.cli, ["tune", "--model", "ffn", "--data", str(not_data), "--out", str(run),
                                          "--overwrite"])
    assert result.exit_code == 1 and "manifest.json" in result.output, result.output
    assert (run / "config.json").exists()


def test_fit_overwrite_removes_its_own_run_and_nothing_else(data_dir, tmp_path):
    out = tmp_path / "runs" / "linear"
    args = ["fit", "--model", "linear", "--data", str(data_dir), "--out", str(out), "--epochs", "1", "--quiet"]
    runner = CliRunner()
    assert runner.invoke(cli.cli, args).exit_code == 0
    assert (out / ownership.MARKER_FILE).is_file() and RunDir(out).is_complete()
    (out / "history.json").write_text("[]")  # reviewflow's own file: replaced by the new run
    assert runner.invoke(cli.cli, args + ["--overwrite"]).exit_code == 0
    assert json.loads((out / "history.json").read_text())  # trained anew
    (out / "my-notes.txt").write_text("mine")  # a user's file in the run: now it is refused
    result = runner.invoke(cli.cli, args + ["--overwrite"])
    assert result.exit_code == 1 and "my-notes.txt" in result.output
    assert (out / "my-notes.txt").read_text() == "mine" and RunDir(out).is_complete()


def test_shard_overwrite_keeps_a_users_lookalike_files(corpus_files, tmp_path):
    train, test = corpus_files
    out = tmp_path / "data"
    args = ["shard", "--train", str(train), "--test", str(test), "--out", str(out), "--num-shards", "1",
            "--vocab-size", "300", "--no-progress"]
    runner = CliRunner()
    assert runner.invoke(cli.cli, args).exit_code == 0
    (out / "notes.md.incomplete").write_text("draft")
    (out / "beam-temp-photos").mkdir()
    result = runner.invoke(cli.cli, args + ["--overwrite"])
    assert result.exit_code == 1 and "notes.md.incomplete" in result.output and "beam-temp-photos" in result.output
    assert (out / "notes.md.incomplete").read_text() == "draft" and (out / "manifest.json").exists()
    (out / "notes.md.incomplete").unlink()
    (out / "beam-temp-photos").rmdir()
    assert runner.invoke(cli.cli, args + ["--overwrite"]).exit_code == 0


def test_shard_overwrite_keeps_the_old_dataset_when_a_source_lacks_its_fields(corpus_files, tmp_path):
    train, test = corpus_files
    out = tmp_path / "data"
    runner = CliRunner()
    args = ["--test", str(test), "--out", str(out), "--num-shards", "1", "--vocab-size", "300", "--no-progress"]
    assert runner.invoke(cli.cli, ["shard", "--train", str(train), *args]).exit_code == 0
    before = snapshot(out)
    wrong = tmp_path / "reviews.csv"
    wrong.write_text("title,body_text\nnice,great product\n")
    result = runner.invoke(cli.cli, ["shard", "--train", str(wrong), *args, "--overwrite"])
    assert result.exit_code == 1 and "--text-field" in result.output, result.output
    assert snapshot(out) == before  # checked before anything was deleted


def test_reports_plots_and_projector_files_are_refused_in_a_data_or_run_directory(data_dir, tmp_path):
    # They were written there, and the directory's own --overwrite then refused it for holding foreign files.
    run = tmp_path / "run"
    ownership.claim(run, RUN_LAYOUT)
    corpus = tmp_path / "corpus.ft.txt"
    corpus.write_text("__label__2 great\n__label__1 awful\n")
    before = snapshot(data_dir), snapshot(run)
    for args, option, place in [
            (["compare", str(run), "--out", str(data_dir)], "--out", data_dir),
            (["report", str(run), "--out", str(run / "report")], "--out", run),
            (["study", "--models", "ffn", "--data", str(data_dir), "--out", str(run)], "--out", run),
            (["stats", str(data_dir), "--plot", str(data_dir / "lengths.png")], "--plot", data_dir),
            (["embed", str(run), "great", "--projector", str(run)], "--projector", run),
            # Anywhere under one, not only right under it; and a run, a data directory or a corpus too (a run
            # was written inside a data directory, whose shard --overwrite then refused it).
            (["report", str(run), "--out", str(data_dir / "a" / "b")], "--out", data_dir),
            (["fit", "--model", "ffn", "--data", str(data_dir), "--out", str(data_dir / "run")], "--out", data_dir),
            (["tune", "--model", "ffn", "--data", str(data_dir), "--out", str(run / "a" / "b")], "--out", run),
            (["shard", "--train", str(corpus), "--test", str(corpus), "--out", str(run / "data")], "--out", run),
            (["synth", str(data_dir / "more.ft.txt")], "OUT", data_dir)]:
        result = CliRunner().invoke(cli.cli, args)
        assert result.exit_code == 2, result.output
        assert f"{place} is a {ownership.marked_kind(place)} reviewflow wrote: {option}" in result.output
    assert (snapshot(data_dir), snapshot(run)) == before
    elsewhere = CliRunner().invoke(cli.cli, ["stats", str(data_dir), "--plot", str(tmp_path / "lengths.png")])
    assert elsewhere.exit_code == 0 and (tmp_path / "lengths.png").is_file()
