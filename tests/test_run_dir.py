"""The run directory: its files, what config.json holds as each version wrote it, and when a run resumes."""

import json

import pytest

from models.run_dir import CONFIG_FILE, HISTORY_CSV, RunConfig, RunDir
from pipeline.errors import ReviewflowError

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
