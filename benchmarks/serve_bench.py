"""`serve` under load on loopback: texts/s and latency with dynamic batching, without it, and the ceiling.

For each model (trained here on a synthetic corpus, at the `--max-len` fit chooses), three figures side by
side in one run:
- the ceiling: the same model scoring the same texts in this process, in batches of 256;
- the server with batching (the defaults), at several numbers of concurrent clients, each client sending one
  review a request over a kept-alive connection;
- the same server with batching off (`--max-batch-size 1`).
Clients run in two processes (threads within each), on the same machine as the server: on a small machine
they take CPU from it, so the ratios are a floor.

    .venv/bin/python benchmarks/serve_bench.py            # make bench-serve
"""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(runs: list[Path], options: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "cli.py", "serve", *map(str, runs), "--port", str(port),
                                "--log-every", "100000", *options], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v2/health/ready")
            if connection.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("the server did not start")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=120)


def client_process(port: int, model: str, texts: list[str], threads: int, seconds: float) -> list[float]:
    """`threads` clients for `seconds`, each sending one review a request; every request's latency."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, index = [], offset
        while time.perf_counter() < stop_at:
            body = json.dumps({"instances": [texts[index % len(texts)]]})
            started = time.perf_counter()
            connection.request("POST", f"/v1/models/{model}:predict", body=body,
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"status {response.status}")
            mine.append(time.perf_counter() - started)
            index += threads
        connection.close()
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=client, args=(offset,)) for offset in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies


def load(port: int, model: str, texts: list[str], concurrency: int, seconds: float) -> dict:
    """texts/s and latency percentiles of `concurrency` clients, split over two client processes."""
    processes = min(2, concurrency)
    shares = [concurrency // processes + (index < concurrency % processes) for index in range(processes)]
    with concurrent.futures.ProcessPoolExecutor(processes) as pool:
        started = time.perf_counter()
        parts = list(pool.map(client_process, [port] * processes, [model] * processes,
                              [texts[index::processes] for index in range(processes)], shares,
                              [seconds] * processes))
        elapsed = time.perf_counter() - started
    latencies = np.array([value for part in parts for value in part])
    return {"texts_per_s": len(latencies) / elapsed, "p50_ms": 1000 * np.percentile(latencies, 50),
            "p99_ms": 1000 * np.percentile(latencies, 99)}


def ceiling(run: Path, texts: list[str], seconds: float) -> float:
    """The same model scoring the same texts in this process, in batches of 256: texts/s."""
    import tensorflow as tf

    from models.run_dir import RunDir

    model = RunDir(run).load_model()
    model.predict_on_batch(tf.constant(texts[:256]))
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for start in range(0, len(texts), 256):
            model.predict_on_batch(tf.constant(texts[start:start + 256]))
            done += len(texts[start:start + 256])
    return done / (time.perf_counter() - started)


def train_runs(work: Path, model_names: list[str], lines: int) -> dict[str, Path]:
    from models.training import FitSettings, fit
    from pipeline import synthetic
    from pipeline.shard.job import shard_corpus
    from pipeline.shard.plan import ShardSettings

    data = work / "data"
    if not (data / "manifest.json").exists():
        train = synthetic.write_corpus(work / "train.ft.txt", lines, seed=1)
        test = synthetic.write_corpus(work / "test.ft.txt", 2000, seed=2)
        shard_corpus(ShardSettings(train=train, test=test, out=data, num_shards=2, overwrite=True))
    runs = {}
    for name in model_names:
        run = work / "runs" / name
        if not (run / "model.keras").exists():
            fit(FitSettings(model=name, data=data, out=run, epochs=1, seed=0, overwrite=True), verbose=0)
        runs[name] = run
    return runs


@click.command()
@click.option("--models", "model_list", default="cnn,transformer,linear", show_default=True)
@click.option("--concurrency", default="1,8,64", show_default=True, help="Numbers of concurrent clients.")
@click.option("--seconds", default=6.0, show_default=True, help="Load time of each measurement.")
@click.option("--lines", default=20_000, show_default=True, help="Training reviews of the synthetic corpus.")
@click.option("--work-dir", default=str(ROOT / "bench-out" / "serve"), show_default=True)
def main(model_list: str, concurrency: str, seconds: float, lines: int, work_dir: str) -> None:
    from pipeline import quiet

    quiet.import_tensorflow()
    from pipeline import synthetic

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    names = model_list.split(",")
    runs = train_runs(work, names, lines)
    texts = [line.split(" ", 1)[1].strip() for line in
             b"".join(synthetic.generate_lines(2000, seed=7)).decode().splitlines()]
    levels = [int(level) for level in concurrency.split(",")]
    rows = []
    for name in names:
        top = ceiling(runs[name], texts, seconds)
        figures = {}
        for label, options in (("batched", []), ("unbatched", ["--max-batch-size", "1"])):
            process, port = start_server([runs[name]], options)
            try:
                figures[label] = {level: load(port, name, texts, level, seconds) for level in levels}
            finally:
                stop_server(process)
        rows.append((name, top, figures))
        click.echo(json.dumps({"model": name, "ceiling": top, **figures}), err=True)
    click.echo(f"\n| model | clients | batched texts/s | p50 ms | p99 ms | unbatched texts/s | p50 ms | p99 ms | "
               f"ceiling texts/s | batched / ceiling | batched / unbatched |\n|{' --- |' * 11}")
    for name, top, figures in rows:
        for level in levels:
            on, off = figures["batched"][level], figures["unbatched"][level]
            click.echo(f"| {name} | {level} | {on['texts_per_s']:,.0f} | {on['p50_ms']:.1f} | {on['p99_ms']:.1f} | "
                       f"{off['texts_per_s']:,.0f} | {off['p50_ms']:.1f} | {off['p99_ms']:.1f} | {top:,.0f} | "
                       f"{on['texts_per_s'] / top:.2f} | {on['texts_per_s'] / off['texts_per_s']:.1f} |")
    click.echo(f"\n{os.cpu_count()} cores; clients and server share them. Reproduce: make bench-serve")


if __name__ == "__main__":
    main()
