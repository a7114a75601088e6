"""Fault injection: each fault a user's long job can meet, tried for real, with the damage counted.

Every scenario runs the real CLI in subprocesses on real files and returns
whether the promise held (a clear error or a clean resume, nothing that looks
complete when it is not) and how many input lines were lost. `tests/test_faults.py`
runs each once; this script runs each `--tries` times and prints the table:

    .venv/bin/python benchmarks/faults.py [--tries 3]
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.run_dir import (BACKUP_DIR, BEST_CHECKPOINT, EXPORT_DIR, MODEL_FILE, RunDir,  # noqa: E402
                            pending_checkpoint)
from pipeline import atomic  # noqa: E402
from pipeline import synthetic  # noqa: E402

TRAIN_LINES = 20000
# How large the hostile inputs are: 1 in the test suite (tests/test_faults.py); the README's figures come from
# `faults.py --scale 5` (a 2 GB Parquet bomb, 3.2M distinct tokens, 500k labels, 1.5M rejects).
SCALE = 1


@dataclasses.dataclass
class Outcome:
    fault: str
    survived: bool
    lines_lost: int
    detail: str = ""


def cli(*args: str, limit_file_bytes: int | None = None) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` to completion."""
    return subprocess.run([sys.executable, "cli.py", *args], cwd=ROOT, capture_output=True, text=True,
                          preexec_fn=_file_size_limit(limit_file_bytes) if limit_file_bytes else None)


def _file_size_limit(limit: int):
    def apply():  # in the child: writes past `limit` fail with EFBIG instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def make_corpus(work: Path) -> tuple[Path, Path]:
    train = work / "train.ft.txt.bz2"
    test = work / "test.ft.txt.bz2"
    if not train.exists():
        synthetic.write_corpus(train, TRAIN_LINES, seed=1, bad_fraction=0.01)
        synthetic.write_corpus(test, 500, seed=2)
    return train, test


def shard_args(train: Path, test: Path, out: Path) -> list[str]:
    return ["shard", "--train", str(train), "--test", str(test), "--out", str(out), "--num-shards", "3",
            "--no-progress"]


def fingerprint(data_dir: Path) -> dict:
    """What must be identical between two runs: every shard's hash, the vocabulary, the accounting."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    return {"shards": {s["path"]: s["sha256"] for split in manifest["splits"].values() for s in split["shards"]},
            "vocabulary": manifest["vocabulary"]["sha256"],
            "sources": [(s["lines_read"], s["written"], s["rejected"]) for s in manifest["sources"]]}


def lines_accounted(data_dir: Path) -> int:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    return sum(s["written"] + sum(s["rejected"].values()) for s in manifest["sources"])


def reference(work: Path) -> Path:
    """An uninterrupted shard run to compare against."""
    out = work / "reference"
    if not (out / "manifest.json").exists():
        train, test = make_corpus(work)
        done = cli(*shard_args(train, test, out))
        assert done.returncode == 0, done.stderr
    return out


def shard_killed(work: Path, share: float) -> Outcome:
    """SIGKILL `shard` once its unfinished shards hold `share` of the final bytes; then run it again."""
    train, test = make_corpus(work)
    expected_bytes = sum(p.stat().st_size for p in reference(work).glob("*.tfrecord"))
    out = work / f"killed-{share}"
    process = subprocess.Popen([sys.executable, "cli.py", *shard_args(train, test, out)], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120

    def written() -> int:
        return sum(p.stat().st_size for p in out.glob("*.incomplete") if p.exists())

    while time.monotonic() < deadline and process.poll() is None:
        if list(out.glob("*.incomplete")) and written() >= share * expected_bytes:
            break
        time.sleep(0.005)
    process.kill()
    process.wait()
    fault = f"shard SIGKILL at {share:.0%} of shard bytes"
    if (out / "manifest.json").exists():
        return Outcome(fault, False, 0, "finished before the kill; use a larger corpus")
    rerun = cli(*shard_args(train, test, out))
    if rerun.returncode != 0:
        return Outcome(fault, False, TRAIN_LINES, rerun.stderr[-300:])
    expected = reference(work)
    lost = lines_accounted(expected) - lines_accounted(out)
    same = fingerprint(out) == fingerprint(expected) and not list(out.glob("*.incomplete"))
    return Outcome(fault, same, lost, "" if same else "output differs from an uninterrupted run")


def fit_killed(work: Path) -> Outcome:
    """SIGKILL `fit` during its second epoch; the same command resumes and ends with all epochs."""
    data = reference(work)
    out = work / "fit-killed"
    args = ["fit", "--model", "ffn", "--data", str(data), "--out", str(out), "--epochs", "4",
            "--steps-per-epoch", "150", "--batch-size", "16", "--seed", "1", "--quiet"]
    process = subprocess.Popen([sys.executable, "cli.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    history = out / "history.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if RunDir(out).backed_up_epochs():  # an epoch done: its row, then its backup, written
            break
        time.sleep(0.02)
    process.kill()
    process.wait()
    before = json.loads(history.read_text()) if history.exists() else []
    if not 1 <= len(before) < 4 or (out / "model.keras").exists():
        return Outcome("fit SIGKILL mid-epoch", False, 0, f"killed after {len(before)} epochs; retry")
    resumed = cli(*args)
    rows = json.loads(history.read_text())
    ok = (resumed.returncode == 0 and "resuming the interrupted run" in resumed.stdout
          and [r["epoch"] for r in rows] == [1, 2, 3, 4] and rows[:len(before)] == before
          and (out / "model.keras").exists())
    detail = f"resumed after epoch {len(before)}" if ok else resumed.stderr[-300:]
    return Outcome("fit SIGKILL mid-epoch", ok, 0, detail)


def start_short_fit(data: Path, out: Path, epochs: int) -> tuple[list[str], subprocess.Popen]:
    """`fit --model ffn` of `epochs` epochs of 20 steps (early stopping never ends it sooner), started: (its
    arguments, to run it again; the process)."""
    args = ["fit", "--model", "ffn", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
            "--steps-per-epoch", "20", "--batch-size", "16", "--seed", "1", "--patience", str(epochs), "--quiet"]
    process = subprocess.Popen([sys.executable, "cli.py", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return args, process


def fit_killed_at_epoch_end(work: Path) -> Outcome:
    """SIGKILL `fit` at the first thing epoch 2's end writes (its best checkpoint, its history row or its backup);
    the same command resumes, with one row per epoch and a best checkpoint that opens.

    Found two bugs: Keras wrote `checkpoints/best.keras` in place (a kill during it left half a zip, which the
    resumed run could not load at its end), and the backup came before the row (a kill between them lost the
    epoch's row: rows 1, 3, 4)."""
    import zipfile
    fault = "fit SIGKILL as epoch 2 ends"
    data = reference(work)
    out = work / "fit-killed-at-epoch-end"
    args, process = start_short_fit(data, out, epochs=4)
    run, checkpoint = RunDir(out), out / BEST_CHECKPOINT
    writing = atomic.incomplete_keeping_suffix(checkpoint)
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        backed_up = run.backed_up_epochs()
        if backed_up >= 2 or len(run.history()) >= 2 or (backed_up == 1 and writing.exists()):
            break
        time.sleep(0.001)
    process.kill()
    process.wait()
    before = run.history()
    when = ("while writing best.keras" if writing.exists() else "after epoch 2's row" if len(before) == 2
            else "after epoch 2's backup")
    if not 1 <= len(before) <= 2 or (out / MODEL_FILE).exists():
        return Outcome(fault, False, 0, f"killed after {len(before)} epochs; retry")
    resumed = cli(*args)
    rows = run.history()
    with zipfile.ZipFile(checkpoint) as archive:  # half a zip does not open
        whole = archive.testzip() is None
    ok = (resumed.returncode == 0 and "resuming the interrupted run" in resumed.stdout and whole
          and [row["epoch"] for row in rows] == [1, 2, 3, 4] and rows[0] == before[0]
          and (out / MODEL_FILE).exists() and not writing.exists())
    return Outcome(fault, ok, 0, f"killed {when}; resumed with rows 1-4" if ok else resumed.stderr[-300:])


def fit_killed_after_best_checkpoint(work: Path) -> Outcome:
    """SIGKILL `fit` once epoch 2's better model is saved and before its backup; the run must still hold epoch 1's
    as best.keras (the resume trains epoch 2 again), then resume to the end.

    Found: best.keras took epoch 2's model at once, so the resume started before an epoch whose model was
    already the best; a second attempt that came out worse left the killed one as the run's model."""
    fault = "fit SIGKILL between epoch 2's best checkpoint and its backup"
    data = reference(work)
    out = work / "fit-killed-after-best-checkpoint"
    args, process = start_short_fit(data, out, epochs=3)
    run, checkpoint = RunDir(out), out / BEST_CHECKPOINT
    pending = pending_checkpoint(checkpoint, 2)
    epoch_1 = None
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline:
        backed_up = run.backed_up_epochs()
        if backed_up >= 2:
            break
        if backed_up == 1 and epoch_1 is None and checkpoint.exists():
            epoch_1 = checkpoint.read_bytes()   # epoch 1's model, as its backup leaves it
        elif epoch_1 is not None and (pending.exists() or checkpoint.read_bytes() != epoch_1):
            break   # epoch 2's model is saved, its backup not yet
        time.sleep(0.001)
    process.kill()
    process.wait()
    if epoch_1 is None or run.backed_up_epochs() != 1:
        return Outcome(fault, False, 0, f"killed after {run.backed_up_epochs()} backed-up epochs; retry")
    kept = checkpoint.read_bytes() == epoch_1
    resumed = cli(*args)
    rows = run.history()
    ok = (kept and resumed.returncode == 0 and "resuming the interrupted run" in resumed.stdout
          and [row["epoch"] for row in rows] == [1, 2, 3] and (out / MODEL_FILE).exists() and not pending.exists())
    detail = ("best.keras held epoch 1's model; resumed with rows 1-3" if ok else
              "best.keras held epoch 2's model, which the resume trains again" if not kept else resumed.stderr[-300:])
    return Outcome(fault, ok, 0, detail)


def fit_killed_finishing(work: Path) -> Outcome:
    """SIGKILL `fit` after its epochs, while it writes the serving export or `model.keras`; the same command
    finishes the run without training again, into the model an uninterrupted run makes (Keras removed the backup
    as training ended: every epoch was trained anew). `linear`: its statistics (IDF) come back with the backup."""
    fault = "fit SIGKILL after training, while exporting"
    data = reference(work)
    out, uninterrupted = work / "fit-killed-finishing", work / "fit-uninterrupted"

    def args(run: Path) -> list[str]:
        return ["fit", "--model", "linear", "--data", str(data), "--out", str(run), "--epochs", "2", "--seed", "1",
                "--quiet"]
    process = subprocess.Popen([sys.executable, "cli.py", *args(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    finishing = [atomic.incomplete_path(out / EXPORT_DIR), atomic.incomplete_keeping_suffix(out / MODEL_FILE)]
    deadline = time.monotonic() + 240
    while process.poll() is None and time.monotonic() < deadline and not any(p.exists() for p in finishing):
        time.sleep(0.001)
    process.kill()
    process.wait()
    before = RunDir(out).history()
    if len(before) != 2 or (out / MODEL_FILE).exists():
        return Outcome(fault, False, 0, f"killed after {len(before)} epochs, complete: {(out / MODEL_FILE).exists()}")
    resumed = cli(*args(out))
    reviews = work / "reviews.txt"
    reviews.write_text("great, I loved it\nawful and a waste\nit was fine, I guess\n")
    trained_whole = cli(*args(uninterrupted))
    scores = [cli("predict", str(run), "--file", str(reviews)).stdout for run in (out, uninterrupted)]
    ok = (resumed.returncode == 0 and "its training had ended; finishing it" in resumed.stdout
          and RunDir(out).history() == before and (out / MODEL_FILE).exists() and not (out / BACKUP_DIR).exists()
          and trained_whole.returncode == 0 and scores[0] == scores[1] and len(scores[0].splitlines()) == 3)
    return Outcome(fault, ok, 0, "finished without training again, the uninterrupted run's predictions" if ok
                   else resumed.stderr[-300:] + str(scores))


def shard_damaged(work: Path, how: str) -> Outcome:
    """A shard truncated or with one byte flipped: `verify` names it, `fit` refuses to start."""
    import shutil
    data = work / f"damaged-{how}"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(reference(work), data)
    victim = data / "train-00001-of-00003.tfrecord"
    raw = bytearray(victim.read_bytes())
    if how == "truncated":
        victim.write_bytes(raw[: len(raw) // 2])
    else:
        raw[len(raw) // 2] ^= 0xFF
        victim.write_bytes(raw)
    verified = cli("verify", str(data))
    fitted = cli("fit", "--model", "ffn", "--data", str(data), "--out", str(work / f"fit-{how}"), "--epochs", "1")
    ok = (verified.returncode == 1 and "BAD" in verified.stdout and victim.name in verified.stdout
          and fitted.returncode == 1 and "damaged" in fitted.stderr and "Traceback" not in fitted.stderr
          and not (work / f"fit-{how}" / "model.keras").exists())
    return Outcome(f"shard {how}", ok, 0, "" if ok else verified.stdout[-300:] + fitted.stderr[-300:])


def disk_full(work: Path, command: str) -> Outcome:
    """Writes fail mid-way (RLIMIT_FSIZE): a clear error, non-zero exit, nothing that looks complete."""
    train, test = make_corpus(work)
    out = work / f"full-{command}"
    if command == "shard":
        done = cli(*shard_args(train, test, out), limit_file_bytes=256 << 10)
        complete = (out / "manifest.json").exists()
    else:
        done = cli("fit", "--model", "ffn", "--data", str(reference(work)), "--out", str(out), "--epochs", "1",
                   "--steps-per-epoch", "5", "--quiet", limit_file_bytes=1 << 20)
        complete = (out / "model.keras").exists()
    # The message must say what went wrong (EFBIG: "File too large"), not just that something did.
    ok = (done.returncode == 1 and "Error:" in done.stderr and "too large" in done.stderr.lower()
          and "Traceback" not in done.stderr and not complete)
    return Outcome(f"{command} disk full", ok, 0, done.stderr.strip().splitlines()[-1][:200] if done.stderr else "")


def concurrent_shards(work: Path) -> Outcome:
    """Two `shard` runs into one directory at once: one is refused by the lock, the other completes."""
    train, test = make_corpus(work)
    out = work / "concurrent"
    processes = [subprocess.Popen([sys.executable, "cli.py", *shard_args(train, test, out)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(), p.stderr.read()) for p in processes]
    codes = sorted(code for code, _ in results)
    refused = [err for code, err in results if code == 1]
    ok = (codes == [0, 1] and "another reviewflow process" in refused[0]
          and fingerprint(out) == fingerprint(reference(work)))
    return Outcome("two shards at once", ok, 0, "" if ok else str(results)[-300:])


def hostile_lines(work: Path) -> Outcome:
    """A 100 MB line, NUL, bad UTF-8, CRLF, BOM, junk labels: bounded memory, every line accounted."""
    train = work / "hostile.ft.txt"
    lines = [b"\xef\xbb\xbf__label__1 first line after a BOM", b"__label__2 windows line\r",
             b"__label__2 " + b"long " * (20 << 20), b"__label__1 nul \x00 inside", b"__label__2 bad \xff utf8",
             b"__label__2x trailing junk", b"__label__2glued to text", b"", b"__label__1 ", b"__label__2 fine"]
    train.write_bytes(b"\n".join(lines) + b"\n")
    small = work / "hostile-small.ft.txt"
    small.write_bytes(b"\n".join(lines[:2] + lines[3:]) + b"\n")
    test = work / "hostile-test.ft.txt"
    test.write_bytes(b"__label__1 a test review\n")
    peaks = {}
    for name, path in (("with", train), ("without", small)):
        out = work / f"hostile-{name}"
        process = subprocess.Popen([sys.executable, "cli.py", "shard", "--train", str(path), "--test", str(test),
                                    "--out", str(out), "--overwrite", "--no-progress"], cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return Outcome("hostile lines", False, len(lines), process.stderr.read().decode()[-300:])
        peaks[name] = usage.ru_maxrss / 1024
    source = json.loads((work / "hostile-with" / "manifest.json").read_text())["sources"][0]
    expected = {"line_too_long": 1, "nul_byte": 1, "invalid_utf8": 1, "bad_label": 2, "no_label": 1,
                "empty_text": 1}
    lost = source["lines_read"] - source["written"] - sum(source["rejected"].values())
    extra_mib = peaks["with"] - peaks["without"]
    ok = (source["lines_read"] == len(lines) and lost == 0 and source["rejected"] == expected
          and source["written"] == 3 and extra_mib < 64)
    return Outcome("hostile lines", ok, lost + (len(lines) - source["lines_read"]),
                   f"100 MB line cost {extra_mib:+.0f} MiB of peak RSS")


def tampered_model(work: Path) -> Outcome:
    """A model.keras replaced by one that carries code: loading refuses it and the code never runs."""
    import shutil
    run = work / "fit-tampered"
    if not (run / "model.keras").exists():
        done = cli("fit", "--model", "ffn", "--data", str(reference(work)), "--out", str(run), "--epochs", "1",
                   "--steps-per-epoch", "5", "--quiet")
        assert done.returncode == 0, done.stderr
    marker = work / "code-ran"
    script = (f"import keras\ninputs = keras.Input(shape=(), dtype='string')\n"
              f"outputs = keras.layers.Lambda(lambda x: (open({str(marker)!r}, 'w'), x)[1])(inputs)\n"
              f"keras.Model(inputs, outputs).save({str(work / 'evil.keras')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    marker.unlink(missing_ok=True)  # building the evil model ran its lambda once; loading must not
    shutil.copy(work / "evil.keras", run / "model.keras")
    done = cli("predict", str(run), "hello")
    ok = (done.returncode == 1 and "refused to load" in done.stderr and not marker.exists()
          and "Traceback" not in done.stderr)
    return Outcome("tampered model.keras", ok, 0, "" if ok else done.stderr[-300:])


def foreign_model(work: Path) -> Outcome:
    """A model.keras naming a class this reviewflow lacks (as a newer one would write): the error names the
    class and the versions, and does not call the file damaged; a truncated model.keras is called damaged."""
    import json
    import shutil
    import zipfile
    run = work / "fit-foreign"
    if not (run / "model.keras").exists():
        done = cli("fit", "--model", "ngram_bag", "--data", str(reference(work)), "--out", str(run), "--epochs", "1",
                   "--steps-per-epoch", "5", "--quiet", "--param", "buckets=1024")
        assert done.returncode == 0, done.stderr
    foreign = work / "foreign"
    shutil.rmtree(foreign, ignore_errors=True)
    shutil.copytree(run, foreign)
    config = json.loads((foreign / "config.json").read_text())
    config["versions"]["reviewflow"] = "9.0.0"
    (foreign / "config.json").write_text(json.dumps(config))
    with zipfile.ZipFile(run / "model.keras") as source, zipfile.ZipFile(foreign / "model.keras", "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data.replace(b"HashedNgrams", b"HashedNgramsV9") if info.filename == "config.json"
                            else data)
    damaged = work / "damaged"  # and a truncated file: that one is damaged, and said to be
    shutil.rmtree(damaged, ignore_errors=True)
    shutil.copytree(run, damaged)
    (damaged / "model.keras").write_bytes((run / "model.keras").read_bytes()[:1000])
    done, truncated = cli("predict", str(foreign), "hello"), cli("predict", str(damaged), "hello")
    ok = (done.returncode == 1 and "'HashedNgramsV9'" in done.stderr and "reviewflow 9.0.0" in done.stderr
          and "upgrade reviewflow" in done.stderr and "damaged" not in done.stderr and "Traceback" not in done.stderr
          and truncated.returncode == 1 and "truncated or damaged" in truncated.stderr
          and "Traceback" not in truncated.stderr)
    return Outcome("model.keras naming an unknown class", ok, 0, "" if ok else (done.stderr + truncated.stderr)[-300:])


def in_child(function, *args):
    """Run `function(*args)` in a fresh interpreter: big inputs are made there, never in this process.

    A child's peak RSS as Linux reports it (ru_maxrss) starts at its parent's high-water mark (kept across
    fork and exec), so a parent that once held a 2 GB input would hide every later child's own peak.
    """
    import multiprocessing
    process = multiprocessing.get_context("spawn").Process(target=function, args=args)
    process.start()
    process.join()
    assert process.exitcode == 0, f"{function.__name__} failed"


def shard_peak(train: Path, test: Path, out: Path, *extra: str) -> tuple[int, str, float]:
    """`shard` in a subprocess: exit code, stderr and peak RSS in MiB."""
    process = subprocess.Popen([sys.executable, "cli.py", "shard", "--train", str(train), "--test", str(test),
                                "--out", str(out), "--overwrite", "--no-progress", *extra], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    return os.waitstatus_to_exitcode(status), process.stderr.read().decode(), usage.ru_maxrss / 1024


def accounted(out: Path) -> tuple[dict, int]:
    """The train source's reject counts and its lines lost (read but neither written nor rejected)."""
    source = json.loads((out / "manifest.json").read_text())["sources"][0]
    return source["rejected"], source["lines_read"] - source["written"] - sum(source["rejected"].values())


def clean_records(count: int = 400) -> list[tuple[str, str]]:
    return [(str(1 + i % 2), f"review number {i} {'great' if i % 2 else 'awful'} product") for i in range(count)]


@dataclasses.dataclass(frozen=True)
class BigText:
    """A text of `size` copies of `char` then `tail`, described here and made only in the writing child."""

    char: str
    size: int
    tail: str

    def make(self) -> str:
        return self.char * self.size + self.tail


def write_format(path: Path, records: list[tuple[str, str | BigText]], raw_lines: list[str] = ()) -> Path:
    """`records` as (label, text) in the file's format by its name, then `raw_lines` as they are."""
    import csv
    import io
    made = {}  # each BigText made once: 800 copies of a 1 MiB text cost ~20 s of page faults, one costs nothing
    for _, text in records:
        if isinstance(text, BigText) and text not in made:
            made[text] = text.make()
    records = [(label, made.get(text, text)) for label, text in records]
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        # The system allocator and zstd's level 1: with mimalloc and zstd's default level, writing the bomb's
        # 400 MB took ~20 s, nearly all of it page faults and compression (~2 s so)
        pa.set_memory_pool(pa.system_memory_pool())
        labels, texts = zip(*records)
        distinct = list(dict.fromkeys(texts))
        if len(distinct) < len(texts) // 2:  # many repeats: dictionary-encoded, as a writer would keep them
            index = {text: i for i, text in enumerate(distinct)}
            column = pa.DictionaryArray.from_arrays(pa.array([index[text] for text in texts], pa.int32()),
                                                    pa.array(distinct))
        else:
            column = pa.array(list(texts))
        pq.write_table(pa.table({"text": column, "label": list(labels)}), path, compression="zstd",
                       compression_level=1, row_group_size=400)  # the 400 clean rows in a row group of their own
        return path
    buffer = io.StringIO()
    if path.suffix == ".csv":
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", "text"])
        writer.writerows(records)
    else:
        buffer.writelines(json.dumps({"label": label, "text": text}) + "\n" for label, text in records)
    buffer.writelines(line + "\n" for line in raw_lines)
    path.write_text(buffer.getvalue())
    return path


def hostile_records(work: Path, kind: str) -> Outcome:
    """One format's hostile records in a clean file: each one reject with its reason, the run goes on, peak RSS
    beside the same file without them."""
    records = clean_records()
    if kind == "json-deep":
        suffix, hostile = ".jsonl", ['{"label": "1", "text": ' + "[" * 100_000 + "]" * 100_000 + "}"]
        expected = {"too_deep": 1}
    elif kind == "csv-wide":
        suffix, hostile = ".csv", [",".join(["x" * 1000] * 4000)]  # 4 MB: fields of 1 kB, the row over 1 MiB
        expected = {"record_too_long": 1}
    elif kind == "parquet-bomb":  # 64 x SCALE distinct texts of 2 MB each, 128 MB decompressed (twice the
        # bomb check's 64 MiB; read, it costs +330 MiB of peak RSS at --scale 1), kB on disk
        suffix, hostile = ".parquet", []
        records = records + [("1", BigText("a", 2 << 20, str(i))) for i in range(64 * SCALE)]
        expected = {"too_compressed": 64 * SCALE}  # its row groups are refused unread, the clean one is read
    else:  # parquet-dictionary: one 1 MiB text in 800 x SCALE rows, 4 GB at --scale 5 if each row were read as
        # a copy (stored dictionary-encoded in ~2 kB: under the bomb check's 64 MiB, so read, and kept encoded)
        suffix, hostile = ".parquet", []
        records = records + [("2", BigText("b", 1 << 20, "!"))] * (800 * SCALE)
        expected = {"record_too_long": 800 * SCALE}
    test = write_format(work / f"{kind}-test{suffix}", clean_records(50))
    peaks = {}
    for name, lines in (("with", hostile), ("without", [])):
        source = work / f"{kind}-{name}{suffix}"
        in_child(write_format, source, records if name == "with" else clean_records(), lines)
        code, stderr, peaks[name] = shard_peak(source, test, work / f"{kind}-{name}")
        if code != 0:
            return Outcome(f"hostile {kind}", False, len(records), stderr[-300:])
    rejected, lost = accounted(work / f"{kind}-with")
    extra_mib = peaks["with"] - peaks["without"]
    size = (work / f"{kind}-with{suffix}").stat().st_size
    ok = rejected == expected and lost == 0 and extra_mib < 96
    return Outcome(f"hostile {kind}", ok, lost, f"{size:,} bytes; rejected {rejected}; {extra_mib:+.0f} MiB of "
                   "peak RSS")


def write_count_corpus(train: Path, kind: str, scale: int) -> None:
    """The count scenarios' training file: 2,000 good lines, then the kind's many lines (in a child process)."""
    base = b"".join(synthetic.generate_lines(2000, seed=5))
    if kind == "unique-tokens":  # 640k x scale distinct tokens: the counting table prunes at 1M (scale 2+)
        extra = b"".join(b"__label__%d " % (1 + line % 2) + b" ".join(b"t%dq%d" % (line, i) for i in range(80))
                         + b"\n" for line in range(8000 * scale))
    elif kind == "many-labels":  # 100k x scale labels, each seen once
        extra = b"".join(b"__label__L%d a review of a stray label\n" % i for i in range(100_000 * scale))
    elif kind == "long-labels":  # 300 x scale labels of 64 kB each
        extra = b"".join(b"__label__" + b"%05d" % i + b"x" * 65_536 + b" text\n" for i in range(300 * scale))
    else:  # many-rejects: 300k x scale lines with no label; rejects.jsonl keeps the first 10,000
        extra = b"".join(b"no label on line %d\n" % i for i in range(300_000 * scale))
    train.write_bytes(base + extra)


def unbounded_counts(work: Path, kind: str) -> Outcome:
    """What grew memory with the input: unique tokens, many distinct labels, very long labels, many rejects."""
    train = work / f"{kind}.ft.txt"
    in_child(write_count_corpus, train, kind, SCALE)
    base = b"".join(synthetic.generate_lines(2000, seed=5))
    expected_lines = 2000 + {"unique-tokens": 8000, "many-labels": 100_000, "long-labels": 300,
                             "many-rejects": 300_000}[kind] * SCALE
    test = work / "counts-test.ft.txt"
    test.write_bytes(b"".join(synthetic.generate_lines(100, seed=6)))
    code, stderr, peak = shard_peak(train, test, work / f"{kind}-data")
    if code != 0:
        return Outcome(kind, False, expected_lines, stderr[-300:])
    normal = plain_peak(work, base, test)
    manifest = json.loads((work / f"{kind}-data" / "manifest.json").read_text())
    source = manifest["sources"][0]
    lost = source["lines_read"] - source["written"] - sum(source["rejected"].values())
    rejects_bytes = (work / f"{kind}-data" / "rejects.jsonl").stat().st_size
    detail = (f"{train.stat().st_size / 2**20:,.0f} MiB in, {peak - normal:+.0f} MiB of peak RSS, "
              f"rejects.jsonl {rejects_bytes / 2**20:.1f} MiB ({manifest['rejects_kept']:,} of "
              f"{manifest['num_rejected']:,} kept)")
    if kind == "unique-tokens":
        detail += f", count error <= {manifest['vocabulary']['count_error']}"
    ok = (source["lines_read"] == expected_lines and lost == 0 and peak - normal < 400
          and manifest["rejects_kept"] <= 10_000 and manifest["classes"]["names"] == ["1", "2"])
    return Outcome(kind, ok, lost, detail)


def plain_peak(work: Path, lines: bytes, test: Path) -> float:
    """Peak RSS of `shard` on the plain corpus the count scenarios add to: measured once per work directory."""
    measured = work / "plain-peak.json"
    if not measured.exists():
        plain = work / "plain.ft.txt"
        plain.write_bytes(lines)
        measured.write_text(json.dumps(shard_peak(plain, test, work / "plain-data")[2]))
    return json.loads(measured.read_text())


def overwrite_foreign(work: Path) -> Outcome:
    """`fit`, `tune` and `shard --overwrite` pointed at a user's folder: refused, every file as it was."""
    folder = work / "users-folder"
    folder.mkdir(exist_ok=True)
    (folder / "notes.md.incomplete").write_text("draft")
    (folder / "beam-temp-photos").mkdir(exist_ok=True)
    (folder / "beam-temp-photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    (folder / "config.json").write_text('{"theme": "dark"}')
    before = {str(p): p.read_bytes() if p.is_file() else b"" for p in folder.rglob("*")}
    train, test = make_corpus(work)
    runs = [cli("fit", "--model", "linear", "--data", str(reference(work)), "--out", str(folder), "--overwrite"),
            cli("tune", "--model", "ffn", "--data", str(reference(work)), "--out", str(folder), "--overwrite"),
            cli(*shard_args(train, test, folder), "--overwrite")]
    after = {str(p): p.read_bytes() if p.is_file() else b"" for p in folder.rglob("*")}
    ok = after == before and all(done.returncode == 1 and "reviewflow did not write" in done.stderr
                                 and "Traceback" not in done.stderr for done in runs)
    return Outcome("--overwrite into a user's folder", ok, 0, "" if ok else runs[-1].stderr[-300:])


def tampered_data(work: Path, how: str) -> Outcome:
    """A data directory changed behind the manifest's back: `fit` refuses it with one clear line."""
    import shutil
    data = work / f"tampered-{how}"
    shutil.rmtree(data, ignore_errors=True)
    shutil.copytree(reference(work), data)
    manifest_path = data / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    if how == "vocab":
        tokens = (data / "vocab.txt").read_text().splitlines()
        tokens[0], tokens[1] = tokens[1], tokens[0]
        (data / "vocab.txt").write_text("\n".join(tokens) + "\n")
        expected = "vocab.txt: sha256 differs"
    elif how == "path":
        manifest["splits"]["train"]["shards"][0]["path"] = "../" + manifest["splits"]["train"]["shards"][0]["path"]
        manifest_path.write_text(json.dumps(manifest))
        expected = "not a plain file name"
    else:  # label: a shard rewritten with a label 7 for two classes, its manifest entry made to match
        import tensorflow as tf
        from pipeline.shard.writer import file_sha256
        entry = manifest["splits"]["train"]["shards"][0]
        shard = data / entry["path"]
        with tf.io.TFRecordWriter(str(shard)) as writer:
            for label in (0, 7):
                feature = {"text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a review"])),
                           "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        manifest["splits"]["train"]["num_examples"] += 2 - entry["num_examples"]
        entry.update(num_examples=2, bytes=shard.stat().st_size, sha256=file_sha256(shard))
        manifest_path.write_text(json.dumps(manifest))
        expected = "label outside the manifest's classes"
    run = work / f"fit-tampered-{how}"
    done = cli("fit", "--model", "linear", "--data", str(data), "--out", str(run), "--epochs", "1", "--quiet")
    ok = (done.returncode == 1 and expected in done.stderr and "Traceback" not in done.stderr
          and not (run / "model.keras").exists())
    return Outcome(f"tampered data: {how}", ok, 0, "" if ok else done.stderr[-300:])


def corrupt_classes(work: Path) -> Outcome:
    """0.5% of a polarity corpus malformed into labels 3 and x (x one repeated line): no silent extra class."""
    train = work / "corrupt-classes.ft.txt"
    lines = list(synthetic.generate_lines(10_000, seed=7))
    for i in range(0, 10_000, 200):  # 0.5%: half __label__3 (distinct texts), half one __label__x line
        lines[i] = (b"__label__3 stray line %d\n" % i) if i % 400 else b"__label__x the same corrupt line\n"
    train.write_bytes(b"".join(lines))
    test = work / "corrupt-test.ft.txt"
    test.write_bytes(b"".join(synthetic.generate_lines(200, seed=8)))
    out = work / "corrupt-classes"
    refused = cli("shard", "--train", str(train), "--test", str(test), "--out", str(out), "--overwrite",
                  "--no-progress", "--seed", "1")
    kept = cli("shard", "--train", str(train), "--test", str(test), "--out", str(out), "--overwrite",
               "--no-progress", "--seed", "1", "--classes", "1,2")
    manifest = json.loads((out / "manifest.json").read_text()) if kept.returncode == 0 else {}
    absent = cli("shard", "--train", str(train), "--test", str(test), "--out", str(work / "corrupt-absent"),
                 "--no-progress", "--classes", "1,2,4")
    words = refused.stderr + refused.stdout
    said = ("'x' have no example in the train split" in words or ("class '3'" in words and "class 'x'" in words))
    ok = (refused.returncode in (0, 1) and said and "Traceback" not in words and kept.returncode == 0
          and manifest.get("classes", {}).get("names") == ["1", "2"] and absent.returncode == 1
          and "'4', which the training file never has" in absent.stderr)
    lost = (sum(s["lines_read"] - s["written"] - sum(s["rejected"].values()) for s in manifest["sources"])
            if manifest else 0)
    said_line = (refused.stderr.strip().splitlines() or [""])[-1]
    return Outcome("corrupt lines as classes", ok, lost, said_line[:200] if ok else words[-300:] + absent.stderr[-200:])


SCENARIOS = {
    "shard-kill-start": lambda work: shard_killed(work, 0.0),
    "shard-kill-mid": lambda work: shard_killed(work, 0.3),
    "fit-kill": fit_killed,
    "fit-kill-epoch-end": fit_killed_at_epoch_end,
    "fit-kill-after-best": fit_killed_after_best_checkpoint,
    "fit-kill-finishing": fit_killed_finishing,
    "shard-truncated": lambda work: shard_damaged(work, "truncated"),
    "shard-flipped": lambda work: shard_damaged(work, "flipped"),
    "shard-disk-full": lambda work: disk_full(work, "shard"),
    "fit-disk-full": lambda work: disk_full(work, "fit"),
    "concurrent-shard": concurrent_shards,
    "hostile-lines": hostile_lines,
    "tampered-model": tampered_model,
    "foreign-model": foreign_model,
    "overwrite-foreign": overwrite_foreign,
    "hostile-json-deep": lambda work: hostile_records(work, "json-deep"),
    "hostile-csv-wide": lambda work: hostile_records(work, "csv-wide"),
    "hostile-parquet-bomb": lambda work: hostile_records(work, "parquet-bomb"),
    "hostile-parquet-dictionary": lambda work: hostile_records(work, "parquet-dictionary"),
    "unique-tokens": lambda work: unbounded_counts(work, "unique-tokens"),
    "many-labels": lambda work: unbounded_counts(work, "many-labels"),
    "long-labels": lambda work: unbounded_counts(work, "long-labels"),
    "many-rejects": lambda work: unbounded_counts(work, "many-rejects"),
    "tampered-vocab": lambda work: tampered_data(work, "vocab"),
    "tampered-path": lambda work: tampered_data(work, "path"),
    "tampered-label": lambda work: tampered_data(work, "label"),
    "corrupt-classes": corrupt_classes,
}


@click.command()
@click.option("--tries", default=3, show_default=True, help="Runs of each fault.")
@click.option("--only", default=None, help="Comma-separated scenario names.")
@click.option("--scale", default=5, show_default=True, help="Size of the hostile inputs (the test suite uses 1).")
def main(tries: int, only: str | None, scale: int) -> None:
    global SCALE
    SCALE = scale
    names = only.split(",") if only else list(SCENARIOS)
    outcomes: dict[str, list[Outcome]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(tries):
            work = Path(tmp) / f"try-{attempt}"  # corpus and reference shared by this try's scenarios
            work.mkdir()
            for name in names:
                outcomes[name].append(SCENARIOS[name](work))
                click.echo(f"try {attempt + 1}: {name}: {'survived' if outcomes[name][-1].survived else 'FAILED'}",
                           err=True)
    rows = [(runs[0].fault, len(runs), sum(o.survived for o in runs), sum(o.lines_lost for o in runs),
             runs[-1].detail) for runs in outcomes.values()]
    click.echo("\n| fault | tries | survived | lines lost | note |\n| --- | --- | --- | --- | --- |")
    for fault, count, survived, lost, detail in rows:
        click.echo(f"| {fault} | {count} | {survived} | {lost} | {detail} |")


if __name__ == "__main__":
    main()
