"""Shared fixtures: tiny synthetic corpora and data directories, made with the project's own code."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

from models import zoo  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402


# The test matrices, made from the registry: a model added there is tested here without a line changed.
# Models of token ids over the shards' vocabulary; a preset's model takes its checkpoint's (tests/test_pretrained.py).
TOKEN_ID_MODELS = sorted(spec.name for spec in zoo.SPECS if not spec.needs_preset)
PRESET_MODELS = sorted(spec.name for spec in zoo.SPECS if spec.needs_preset)


@pytest.fixture(scope="session")
def corpus_files(tmp_path_factory):
    """A small train corpus with every kind of bad line, and a clean test corpus (bz2)."""
    root = tmp_path_factory.mktemp("corpus")
    train = synthetic.write_corpus(root / "train.ft.txt.bz2", 1200, seed=1, bad_fraction=0.05)
    test = synthetic.write_corpus(root / "test.ft.txt.bz2", 300, seed=2)
    return train, test


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, corpus_files):
    """A sharded data directory of the small corpus (read-only for tests)."""
    out = tmp_path_factory.mktemp("data") / "shards"
    train, test = corpus_files
    shard_corpus(ShardSettings(train=train, test=test, out=out, num_shards=3, vocab_size=2000))
    return out


def built_once(tmp_path_factory, name: str, build) -> Path:
    """A module fixture's files, made once per test session: by whichever pytest-xdist worker asks first,
    while the others wait on a lock and then read them (a module fixture is otherwise made once per worker
    that runs one of its tests). `build(root)` fills the empty directory `root`, which is returned."""
    import fcntl
    import shutil

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    session = tmp_path_factory.getbasetemp()
    root = Path(session.parent if worker else session) / f"shared-{name}"  # the workers' common parent
    with open(f"{root}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / ".built").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            build(root)
            (root / ".built").touch()
    return root


def easy_data(root, lines: int, mean_words: float, test_lines: int = 200, agreement: float = 0.9,
              num_shards: int = 2, vocab_size: int = 2000):
    """An easy corpus (clear sentiment words, no label noise) sharded into `root/data`."""
    train = synthetic.write_corpus(root / "train.ft.txt", lines, 1, mean_words, agreement=agreement, label_noise=0)
    test = synthetic.write_corpus(root / "test.ft.txt", test_lines, 2, mean_words, agreement=agreement,
                                  label_noise=0)
    shard_corpus(ShardSettings(train=train, test=test, out=root / "data", num_shards=num_shards,
                               vocab_size=vocab_size))
    return root / "data"


def kill_after_first_epoch(command: list[str], run_dir, cwd, limit_s: float = 240) -> list[dict]:
    """Start `command` (a `cli.py fit`), SIGKILL it as soon as RUN has a history row, as a user's run dies;
    the rows it left."""
    import signal
    import subprocess
    import time

    from models.run_dir import RunDir

    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s  # a bound for a hung child, not a timing under test
    while not RunDir(run_dir).history() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return RunDir(run_dir).history()

