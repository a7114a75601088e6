"""Shared fixtures: tiny synthetic corpora and data directories, made with the project's own code."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402

from pipeline import quiet  # noqa: E402

quiet.import_tensorflow()

from models import zoo  # noqa: E402
from pipeline import synthetic  # noqa: E402
from pipeline.shard.job import shard_corpus  # noqa: E402
from pipeline.shard.plan import ShardSettings  # noqa: E402


ROOT = Path(__file__).resolve().parents[1]
# The script `cli_in_a_new_process` runs: each command through click, what it said, as one JSON line at the end.
# An exception click did not turn into an error is a traceback in that command's stderr, as a user would see it.
COMMANDS_SCRIPT = """
import json, sys, traceback
from click.testing import CliRunner
import cli
said = []
for args in json.loads(sys.argv[1]):
    done = CliRunner().invoke(cli.cli, args)
    crashed = done.exception is not None and not isinstance(done.exception, SystemExit)
    trace = "".join(traceback.format_exception(done.exception)) if crashed else ""
    said.append([args, done.exit_code, done.stdout, done.stderr + trace])
print(json.dumps(said))
"""

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
    """Start `command` (a `cli.py fit`), SIGKILL it as soon as RUN's first epoch is backed up (its row is
    written before), as a user's run dies; the rows it left."""
    import signal
    import subprocess
    import time

    from models.run_dir import RunDir

    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s  # a bound for a hung child, not a timing under test
    while not RunDir(run_dir).backed_up_epochs() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return RunDir(run_dir).history()


@dataclasses.dataclass(frozen=True)
class Said:
    """What one command said: its arguments, exit code, stdout and stderr."""

    args: list
    exit_code: int
    stdout: str
    stderr: str


def start_cli_commands(*commands: list) -> subprocess.Popen:
    """Start a fresh interpreter that runs each of `commands` (cli.py's arguments) through click, in turn."""
    return start_python(COMMANDS_SCRIPT, json.dumps([[str(arg) for arg in command] for command in commands]))


def start_python(script: str, *args: str) -> subprocess.Popen:
    """Start a fresh interpreter running `script` (with `args` in sys.argv), which imports only what it imports."""
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def printed_json(process: subprocess.Popen):
    """What a process of `start_python` printed as JSON on its last line, once it exited 0."""
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-2000:]
    return json.loads(stdout.splitlines()[-1])


def said_by(process: subprocess.Popen, check: bool = True) -> list[Said]:
    """What each command of `start_cli_commands` said; with `check`, each must have exited 0."""
    said = [Said(*row) for row in printed_json(process)]
    failed = [f"{' '.join(command.args)}: {command.stderr[-1500:]}" for command in said if command.exit_code]
    assert not (check and failed), "\n".join(failed)
    return said


def cli_in_a_new_process(*commands: list, check: bool = True) -> list[Said]:
    """Each of `commands` through click, in one fresh interpreter that never wrote what they read, as users run
    them: its first load imports every class it needs itself, and the commands share one TensorFlow import
    (~5 s) instead of paying one each."""
    return said_by(start_cli_commands(*commands), check)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    """Whether a server accepts connections on the localhost port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return True
    except OSError:
        return False


def wait_until(condition, limit_s: float = 60) -> None:
    """Poll until `condition()` holds; the limit bounds a hung process, it is no timing under test."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"{condition} never held"
        time.sleep(0.02)
