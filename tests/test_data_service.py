"""The tf.data service: a real dispatcher and two workers started with `python cli.py data-service`."""

import json
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from click.testing import CliRunner

import cli
from conftest import free_port
from pipeline import data_service, dataset
from pipeline.data_dir import DataDir
from pipeline.errors import ReviewflowError

ROOT = Path(__file__).resolve().parents[1]
READY = re.compile(r"ready at (grpc://\S+)")
START_SECONDS = 90


def launch(*args: str, port: int = 0) -> subprocess.Popen:
    """A `data-service` process, its output (stderr too) on a pipe."""
    return subprocess.Popen([sys.executable, "cli.py", "data-service", "--port", str(port), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(process: subprocess.Popen, pattern: re.Pattern) -> tuple[re.Match, str]:
    """The first match of `pattern` in the process's output, and the output up to it."""
    deadline = time.monotonic() + START_SECONDS  # a bound for a server that never starts, not a timing under test
    output = ""
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([process.stdout], [], [], 1.0)[0]:
            output += process.stdout.readline()
            if match := pattern.search(output):
                return match, output
    process.kill()
    raise AssertionError(f"data-service never said {pattern.pattern!r}: {output}{process.stdout.read()}")


@pytest.fixture(scope="module")
def service():
    """Two workers, started first, then their dispatcher, on localhost; stopped with SIGTERM at the end, which
    must exit 0."""
    port = free_port()
    workers = [launch("--dispatcher", f"localhost:{port}") for _ in range(2)]
    for worker in workers:  # started before their dispatcher: they say so and wait
        read_until(worker, re.compile(f"no dispatcher answers at localhost:{port} yet; waiting"))
    dispatcher = launch(port=port)
    address = read_until(dispatcher, READY)[0].group(1)
    for worker in workers:
        read_until(worker, READY)
    yield address, [dispatcher, *workers]
    # Either order stops at once (workers heartbeat every second: data_service.WORKER_HEARTBEAT_MS).
    for group in [[dispatcher], workers]:
        for process in group:
            process.send_signal(signal.SIGTERM)
        for process in group:
            rest = process.communicate(timeout=60)[0]
            assert process.returncode == 0 and "stopped" in rest, rest


def test_a_port_in_use_is_refused_by_name_even_a_dispatchers(service):
    address, _ = service
    with socket.create_server(("127.0.0.1", 0)) as other_server:
        # TensorFlow's gRPC binds with SO_REUSEPORT: unchecked, a second dispatcher would start on the first's port.
        for port in (data_service.parse_address(address)[1], other_server.getsockname()[1]):
            done = subprocess.run([sys.executable, "cli.py", "data-service", "--port", str(port)], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 1 and f"port {port} is in use" in done.stderr, done.stderr
            assert "another --port" in done.stderr and "Traceback" not in done.stderr and "ready" not in done.stdout


def test_a_worker_waiting_for_its_dispatcher_stops_on_ctrl_c():
    worker = launch("--dispatcher", f"localhost:{free_port()}")
    read_until(worker, re.compile("waiting for it"))
    worker.send_signal(signal.SIGINT)
    rest = worker.communicate(timeout=60)[0]
    assert worker.returncode == 0 and "stopped before the dispatcher answered" in rest, rest


def non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_servers_listen_on_loopback_only(service):
    address, processes = service
    for process in processes:
        listening = [conn.laddr for conn in psutil.Process(process.pid).net_connections("tcp")
                     if conn.status == psutil.CONN_LISTEN]
        assert listening and all(laddr.ip.startswith("127.") for laddr in listening), listening
    outside = non_loopback_ipv4()
    if outside is None:
        pytest.skip("this machine has no address beyond loopback to try")
    with pytest.raises((ConnectionRefusedError, TimeoutError)):  # refused, or dropped by a firewall
        socket.create_connection((outside, data_service.parse_address(address)[1]), timeout=5)


def test_pipeline_on_the_service_yields_every_example_once(service, data_dir):
    address, _ = service
    local = dataset.make_dataset(DataDir.open(data_dir), "train", 32, known_size=False)
    remote = data_service.distribute(dataset.make_dataset(DataDir.open(data_dir), "train", 32, known_size=False),
                                     address)

    def rows(batches):
        return sorted(tuple(np.trim_zeros(ids, "b").tolist()) + (float(label[0]),)  # padding: the batch's
                      for x, y in batches.as_numpy_iterator() for ids, label in zip(x, y))

    expected = rows(local)
    assert len(expected) == json.loads((data_dir / "manifest.json").read_text())["splits"]["train"]["num_examples"]
    assert rows(remote) == expected
    assert rows(remote) == expected  # a second epoch is a new job over every file again


def test_fit_with_data_service(service, data_dir, tmp_path):
    address, _ = service
    out = tmp_path / "run"
    result = CliRunner().invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(data_dir), "--out", str(out),
                                          "--epochs", "2", "--data-service", address, "--quiet"])
    assert result.exit_code == 0, result.output
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert json.loads((out / "config.json").read_text())["settings"]["data_service"] == address
    assert (out / "model.keras").is_file() and not (out / "cache").exists()
    assert np.isfinite(history[-1]["val_loss"])


def test_fit_refuses_an_unreachable_or_malformed_service(data_dir, tmp_path):
    unused = free_port()
    runner = CliRunner()
    for address, message in [(f"grpc://localhost:{unused}", "no tf.data service dispatcher answers"),
                             ("http://localhost:5050", "not a tf.data service address")]:
        result = runner.invoke(cli.cli, ["fit", "--model", "ffn", "--data", str(data_dir), "--out",
                                         str(tmp_path / "run"), "--data-service", address])
        assert result.exit_code == 1 and message in result.output, result.output
        assert "Traceback" not in result.output


def test_addresses_are_parsed_strictly():
    assert data_service.parse_address("grpc://localhost:5050") == ("localhost", 5050)
    assert data_service.parse_address("10.0.0.7:6000") == ("10.0.0.7", 6000)
    for bad in ["localhost", "grpc://localhost", "localhost:port", "grpc://:5050"]:
        with pytest.raises(ReviewflowError):
            data_service.parse_address(bad)


def test_worker_option_check_needs_no_server():
    result = subprocess.run([sys.executable, "cli.py", "data-service", "--port", "0", "--dispatcher",
                             "localhost:1", "--work-dir", "x"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "--work-dir is for the dispatcher" in result.stderr
