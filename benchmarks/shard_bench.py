"""Shard throughput against the decompression floor, and peak memory at 1x and 4x corpus size.

Measured side by side in one run on the same files (the machine is shared and
noisy: ratios are what count). Usage:

    .venv/bin/python benchmarks/shard_bench.py [--lines 150000] [--repeats 2] [--scales 1,4]

`--scales 36 --lines 100000` makes a corpus the size of the real training file
(3.6M lines): slow to make (minutes), but it shows start-up amortized.

`--against DIR` (a checkout of another commit, e.g. `git worktree add /tmp/old HEAD~3`) also times that
checkout's `shard` on the same files, alternating with this one's, and prints the ratio:

    .venv/bin/python benchmarks/shard_bench.py --scales 1 --repeats 5 --against /tmp/old
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import synthetic  # noqa: E402


def run_child(command: list[str], cwd: Path = ROOT) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{process.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024


def bunzip_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(f"bzip2 -dc {path} > /dev/null", shell=True, check=True)
    return time.perf_counter() - started


def shard(train: Path, test: Path, out: Path, extra: list[str], root: Path = ROOT) -> tuple[float, float, float]:
    """(command seconds, in-process seconds from the manifest, peak RSS MiB) of `root`'s cli.py."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, str(Path(root) / "cli.py"), "shard", "--train", str(train), "--test", str(test),
               "--out", str(out), "--no-progress", *extra]
    seconds, rss = run_child(command, root)
    return seconds, json.loads((out / "manifest.json").read_text())["seconds"], rss


@click.command()
@click.option("--lines", default=150_000, show_default=True, help="Lines of the 1x corpus.")
@click.option("--repeats", default=2, show_default=True, help="Timed runs of each command; the best counts.")
@click.option("--work-dir", default=str(ROOT / "bench-out"), show_default=True, help="Where corpora go.")
@click.option("--shard-option", "extra", multiple=True, help="Extra option for `shard` (repeatable).")
@click.option("--scales", default="1,4", show_default=True,
              help="Corpus sizes, as multiples of --lines; the peak RSS ratio compares the last to the first.")
@click.option("--against", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Another checkout whose `shard` is timed on the same files, alternating with this one's.")
def main(lines: int, repeats: int, work_dir: str, extra: tuple[str, ...], scales: str, against: Path | None) -> None:
    work = Path(work_dir)
    work.mkdir(exist_ok=True)
    test = work / "tiny-test.ft.txt.bz2"
    if not test.exists():
        synthetic.write_corpus(test, 100, seed=99)
    rows = []
    for scale in [int(scale) for scale in scales.split(",")]:
        corpus = work / f"train-{lines * scale}.ft.txt.bz2"
        if not corpus.exists():
            click.echo(f"making {corpus.name} ...")
            synthetic.write_corpus(corpus, lines * scale, seed=scale)
        floor = min(bunzip_seconds(corpus) for _ in range(repeats))
        if against is not None:
            compare_with(against, corpus, test, work, list(extra), repeats)
        runs = [shard(corpus, test, work / "out", list(extra)) for _ in range(repeats)]
        command_s, inside_s, _ = min(runs)
        rss = max(run[2] for run in runs)
        rows.append((scale, corpus, floor, command_s, inside_s, rss))
    click.echo(f"\n{'corpus':>10} {'MB':>7} {'bzip2 -dc s':>12} {'shard s':>8} {'ratio':>6} "
               f"{'in-proc s':>10} {'ratio':>6} {'peak RSS MiB':>13}")
    for scale, corpus, floor, command_s, inside_s, rss in rows:
        megabytes = corpus.stat().st_size / 1e6
        click.echo(f"{scale:>9}x {megabytes:>7.1f} {floor:>12.2f} {command_s:>8.2f} {floor / command_s:>6.2f} "
                   f"{inside_s:>10.2f} {floor / inside_s:>6.2f} {rss:>13.0f}")
    click.echo(f"\nthroughput ratio = bzip2 -dc time / shard time (goal >= 1.0); "
               f"'in-proc' leaves out interpreter and TensorFlow start-up.\n"
               f"peak RSS {rows[-1][0]}x / {rows[0][0]}x = {rows[-1][5] / rows[0][5]:.2f} (goal <= 1.2 for 4x / 1x); "
               f"cores: {os.cpu_count()}")


def compare_with(other: Path, corpus: Path, test: Path, work: Path, extra: list[str], repeats: int) -> None:
    """This checkout's shard and `other`'s on the same corpus, alternating; best in-process seconds of each."""
    ours, theirs = [], []
    for repeat in range(repeats):  # who goes first alternates too: a noisy neighbour hits both alike
        for side in ((0, 1) if repeat % 2 == 0 else (1, 0)):
            if side == 0:
                ours.append(shard(corpus, test, work / "out", extra)[1])
            else:
                theirs.append(shard(corpus, test, work / "out-other", extra, other)[1])
    click.echo(f"{corpus.name}: shard in-process seconds, best of {repeats} alternating: this checkout "
               f"{min(ours):.2f} {sorted(ours)}, {other} {min(theirs):.2f} {sorted(theirs)}; "
               f"time ratio this / other = {min(ours) / min(theirs):.3f}")


if __name__ == "__main__":
    main()
