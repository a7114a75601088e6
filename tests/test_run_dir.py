"""The run directory: its files, what config.json holds as each version wrote it, and when a run resumes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.run_dir import CONFIG_FILE, HISTORY_CSV, RunConfig, RunDir
from pipeline.errors import ReviewflowError
from conftest import cli_in_a_new_process

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = {"model": "cnn", "epochs": 2, "max_len": 32, "truncate": "head_tail"}


def config(**changes) -> RunConfig:
    fields = dict(settings=SETTINGS, global_batch_size=64, replicas=1, vocab_size=300, vocab_sha256="v",
                  data_manifest_sha256="m", parameters=10, versions={"reviewflow": "x"})
    return RunConfig(**{**fields, **changes})


def test_config_round_trips_and_a_later_versions_keys_do_not_stop_a_read(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(config(plan={"batch": {"value": 64}}))
    assert run.config() == config(plan={"batch": {"value": 64}}) and run.config().model == "cnn"
    written = json.loads((run / CONFIG_FILE).read_text())
    (run / CONFIG_FILE).write_text(json.dumps({**written, "calibration": {"temperature": 1.3}}))
    assert run.config().plan == {"batch": {"value": 64}}   # a key this version does not know is ignored
    del written["plan"], written["classes"]
    (run / CONFIG_FILE).write_text(json.dumps(written))    # an older run: no plan, no classes
    assert run.config().plan is None and run.config().class_names() == ["1", "2"]


def test_history_is_written_as_json_and_csv(tmp_path):
    run = RunDir(tmp_path)
    run.write_history([{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    assert run.history()[1] == {"epoch": 2, "loss": 0.25}
    assert (tmp_path / HISTORY_CSV).read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25"]


def interrupted(tmp_path, settings=SETTINGS) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.claim(overwrite=False)
    run.write_config(config(settings=settings))
    return run


def test_an_interrupted_run_resumes_only_with_the_same_settings(tmp_path):
    run = interrupted(tmp_path)
    assert run.interrupted_settings() == SETTINGS
    assert run.prepare(SETTINGS, overwrite=False) is False   # same settings; no backup yet, so from the start
    with pytest.raises(ReviewflowError, match=r"other settings \(max_len\)"):
        run.prepare({**SETTINGS, "max_len": 64}, overwrite=False)


def test_a_setting_an_earlier_version_did_not_record_takes_what_it_meant_then(tmp_path):
    earlier = {key: value for key, value in SETTINGS.items() if key != "truncate"}
    run = interrupted(tmp_path, earlier)
    assert run.prepare({**earlier, "truncate": "head"}, overwrite=False, earlier_defaults={"truncate": "head"}) \
        is False
    with pytest.raises(ReviewflowError, match=r"other settings \(truncate\)"):
        run.prepare(SETTINGS, overwrite=False, earlier_defaults={"truncate": "head"})


def test_a_complete_run_is_refused_without_overwrite(tmp_path):
    run = interrupted(tmp_path)
    (run / "model.keras").write_bytes(b"k")
    assert run.is_complete() and run.interrupted_settings() is None
    with pytest.raises(ReviewflowError, match="already holds a complete run"):
        run.prepare(SETTINGS, overwrite=False)
    assert run.prepare(SETTINGS, overwrite=True) is False and not (run / "model.keras").exists()


@pytest.mark.parametrize("name, content, words", [
    ("config.json", b'{"settings": {', "config.json is damaged, not JSON (Expecting"),
    ("config.json", b"[1, 2]", "config.json is damaged: a JSON list, not a JSON object"),
    ("config.json", b'{"settings": {}}', "config.json is damaged: it lacks global_batch_size"),
    ("history.json", b"[{\"epoch\": 1}, \xff]", "history.json is damaged, not JSON ('utf-8' codec"),
    ("metrics.json", b"{}\n{}", "metrics.json is damaged, not JSON (Extra data"),
    ("errors.jsonl", b'{"text": "ok"}\n{"text": "cut', "errors.jsonl, line 2 is damaged, not JSON"),
])
def test_a_damaged_run_file_is_named_with_its_fix_not_a_traceback(tmp_path, name, content, words):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.write_config(config())
    (run / name).write_bytes(content)
    reader = {"config.json": run.config, "history.json": run.history, "metrics.json": run.metrics,
              "errors.jsonl": run.errors}[name]
    with pytest.raises(ReviewflowError) as raised:
        reader()
    assert str(run / name) in str(raised.value) and words in str(raised.value)
    fix = "fit --overwrite" if name in ("config.json", "history.json") else "Run `evaluate`"
    assert fix in str(raised.value)


def test_predict_on_a_run_with_a_damaged_config_says_so_and_exits_1(tmp_path):
    from click.testing import CliRunner

    import cli

    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run / CONFIG_FILE).write_text('{"settings": {"model": "cnn"')   # cut short by a full disk, say
    (run / "model.keras").write_bytes(b"PK")
    result = CliRunner().invoke(cli.cli, ["predict", str(run.path), "good"])
    assert result.exit_code == 1 and "config.json is damaged, not JSON" in result.output, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)   # click's exit, no crash


def test_a_fit_or_tune_into_a_run_another_process_writes_is_refused_untouched(data_dir, tmp_path):
    run = tmp_path / "run"
    with RunDir(run).locked(overwrite=False):   # as a fit in another process holds it while it trains
        refused = cli_in_a_new_process(*[[*command, "--data", data_dir, "--out", run, "--epochs", "1"] for command in (
            ["fit", "--model", "linear"], ["tune", "--model", "linear", "--max-trials", "1"])], check=False)
        for done in refused:
            assert done.exit_code == 1 and "another reviewflow process is writing here" in done.stderr, done.stderr
            assert "Traceback" not in done.stderr
        assert sorted(path.name for path in run.iterdir()) == [".lock", ".reviewflow"]   # nothing written


def test_the_lock_is_taken_again_by_its_own_process_and_kept_by_overwrite(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.locked(overwrite=True):
        with run.locked(overwrite=True):   # tune holds it, then fits the best configuration into the same run
            run.claim(overwrite=True)       # --overwrite deletes what reviewflow wrote, but not the lock it holds
        assert (run / ".lock").exists()
        assert subprocess.run([sys.executable, "-c", "import fcntl, sys; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)", str(run / ".lock")]).returncode != 0


def test_a_data_directory_given_as_a_run_is_named_so(data_dir):
    from click.testing import CliRunner

    import cli

    before = sorted(path.name for path in data_dir.iterdir())
    for command in (["predict", str(data_dir), "good"], ["evaluate", str(data_dir), "--data", str(data_dir)]):
        result = CliRunner().invoke(cli.cli, command)
        assert result.exit_code == 1 and "is a data directory (`shard` wrote it), not a run directory" in result.output
    compared = CliRunner().invoke(cli.cli, ["compare", str(data_dir)])   # a row that says so, among the runs
    assert compared.exit_code == 0 and "is a data directory (`shard` wrote it)" in compared.output, compared.output
    assert sorted(path.name for path in data_dir.iterdir()) == before


def test_a_run_directory_given_as_data_is_named_so(tmp_path):
    from click.testing import CliRunner

    import cli

    run = RunDir(tmp_path / "run")
    run.claim(overwrite=False)   # marked as a run directory, as fit marks it
    for command in (["fit", "--model", "linear", "--data", str(run.path), "--out", str(tmp_path / "new")],
                    ["stats", str(run.path)]):
        result = CliRunner().invoke(cli.cli, command)
        assert result.exit_code == 1 and "is a run directory (`fit` wrote it), not a data directory" in result.output
    assert not (tmp_path / "new").exists()
