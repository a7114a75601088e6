"""The tf.data service: a dispatcher and workers that run the input pipeline for `fit` elsewhere.

The service has no authentication, so by default its servers listen on
loopback only. TensorFlow gives its servers a port but no bind address (they
listen on every interface), so `data-service` preloads a small C library
(`loopback_bind.c`) that turns their wildcard bind into 127.0.0.1, and then
checks the sockets it holds before it reports that it is ready.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import sys
import threading
from typing import Callable
from urllib.parse import urlsplit

import psutil

from pipeline import ports
from pipeline.errors import ReviewflowError

# TensorFlow is imported inside the functions that use it, so that the CLI can
# restart itself with the shim preloaded before paying for TensorFlow's import.

# IPv6 loopback is not among them: the shim refuses IPv6 wildcard binds.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
PROTOCOL = "grpc"
CONNECT_TIMEOUT_SECONDS = 5.0
DISPATCHER_POLL_SECONDS = 1.0   # how often a worker started first asks whether its dispatcher answers yet
# How often a worker heartbeats to its dispatcher. TensorFlow's default is 30 s, and a worker's stop waited for the
# heartbeat under way: after a `fit`, SIGTERM took 0.05-4.5 s here (up to 16 s in CI). At 1 s it takes ~0.05 s;
# the dispatcher answers one small RPC a second per worker.
WORKER_HEARTBEAT_MS = 1000
SHIM_MARKER = "REVIEWFLOW_LOOPBACK_SHIM"  # set in the environment of a process restarted with the shim


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS


def loopback_shim_path() -> str | None:
    """The built `loopback_bind` library, or None where the install had no C compiler."""
    spec = importlib.util.find_spec("pipeline._loopback_bind")
    return spec.origin if spec and spec.origin else None


def env_with_shim() -> dict[str, str]:
    """This process's environment with the loopback shim added to LD_PRELOAD, and the marker set."""
    shim = loopback_shim_path()
    if shim is None:
        raise ReviewflowError(
            "this install has no loopback_bind library (it needs a C compiler at `pip install` time), so "
            "the tf.data service cannot be kept on localhost. Reinstall with gcc available, or pass "
            "--host with the address that trainers use, to listen on all interfaces of a trusted network.")
    if any(separator in shim for separator in " :"):  # LD_PRELOAD splits its list on both
        raise ReviewflowError(f"{shim}: LD_PRELOAD cannot load a library from a path with a space or a colon; "
                              "install reviewflow (its virtual environment) under a path without them.")
    preload = [path for path in os.environ.get("LD_PRELOAD", "").split(":") if path]
    return dict(os.environ, LD_PRELOAD=":".join([shim, *preload]), **{SHIM_MARKER: "1"})


def restart_with_shim() -> None:
    """Replace this process by the very same command line with the loopback shim preloaded.

    Done before TensorFlow is imported, so it costs little; the restarted
    process finds the marker in its environment and does not restart again.
    """
    environment = env_with_shim()
    sys.stdout.flush()
    os.execve(sys.executable, sys.orig_argv, environment)


def needs_restart(host: str) -> bool:
    """Whether a server for `host` must first restart this process with the shim."""
    return is_loopback(host) and SHIM_MARKER not in os.environ


def parse_address(address: str) -> tuple[str, int]:
    """`grpc://HOST:PORT` or `HOST:PORT` -> (host, port); refuses anything else."""
    parts = urlsplit(address if "://" in address else f"{PROTOCOL}://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != PROTOCOL or not parts.hostname or port is None:
        raise ReviewflowError(f"{address!r} is not a tf.data service address; write grpc://HOST:PORT, "
                              "e.g. grpc://localhost:5050.")
    return parts.hostname, port


def check_reachable(address: str) -> None:
    """Fail fast and clearly when no dispatcher answers (tf.data would retry for minutes)."""
    host, port = parse_address(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS).close()
    except OSError as exc:
        raise ReviewflowError(f"no tf.data service dispatcher answers at {address} ({exc.strerror or exc}). "
                              f"Start one with `reviewflow data-service --port {port}` and at least one "
                              f"worker with `reviewflow data-service --dispatcher {host}:{port} --port P`.")


def start_dispatcher(port: int, work_dir: str | None = None):
    """A dispatcher on `port`; with `work_dir` it journals its state and recovers it after a restart."""
    import tensorflow as tf

    service = tf.data.experimental.service
    config = service.DispatcherConfig(port=port, protocol=PROTOCOL, work_dir=work_dir,
                                      fault_tolerant_mode=work_dir is not None)
    return service.DispatchServer(config)


def start_worker(port: int, dispatcher: str, host: str):
    """A worker on `port` that registers with `dispatcher`; trainers reach it at `host`."""
    import tensorflow as tf

    service = tf.data.experimental.service
    dispatcher_host, dispatcher_port = parse_address(dispatcher)
    config = service.WorkerConfig(dispatcher_address=f"{dispatcher_host}:{dispatcher_port}",
                                  worker_address=f"{host}:%port%", port=port, protocol=PROTOCOL,
                                  heartbeat_interval_ms=WORKER_HEARTBEAT_MS)
    return service.WorkerServer(config)


def bound_port(server) -> int:
    """The port a DispatchServer or WorkerServer got (TensorFlow exposes it only privately)."""
    return int(server._address.rsplit(":", 1)[1])


def listening_addresses() -> list[tuple[str, int]]:
    """(ip, port) of every TCP socket this process listens on."""
    return sorted((conn.laddr.ip, conn.laddr.port) for conn in psutil.Process().net_connections("tcp")
                  if conn.status == psutil.CONN_LISTEN)


def check_loopback_only() -> None:
    """Refuse to serve when any socket of this process listens beyond loopback."""
    exposed = [f"{ip}:{port}" for ip, port in listening_addresses()
               if not ip.startswith("127.") and ip != "::1"]
    if exposed:
        raise ReviewflowError(f"the tf.data service listens on {', '.join(exposed)}, beyond localhost, and it "
                              "has no authentication: stopped. Pass --host explicitly to allow that.")


def distribute(dataset, address: str):
    """Dataset -> the same dataset run on the service's workers; each file goes to one worker."""
    import tensorflow as tf

    service = tf.data.experimental.service
    check_reachable(address)
    host, port = parse_address(address)
    dataset = dataset.apply(service.distribute(service.ShardingPolicy.DYNAMIC, f"{PROTOCOL}://{host}:{port}"))
    return dataset.prefetch(tf.data.AUTOTUNE)  # keep batches arriving while the accelerator trains


def check_port_free(port: int) -> None:
    """Refuse a port something listens on, by name. TensorFlow's gRPC servers bind with SO_REUSEPORT: a second
    dispatcher on a port would start beside the first and the kernel would split connections between them;
    any other listener there fails their start with only "Could not start gRPC server"."""
    if port != 0:  # 0: any free port
        ports.bound_socket("", port).close()


def wait_for_dispatcher(dispatcher: str, stop: threading.Event, announce: Callable[[str], None]) -> bool:
    """Wait until the dispatcher answers (TensorFlow's worker would wait inside its start, silent and deaf to
    Ctrl-C), saying so once; False if stopped first."""
    said = False
    while True:
        try:
            check_reachable(dispatcher)
            return True
        except ReviewflowError:
            if not said:
                announce(f"no dispatcher answers at {dispatcher} yet; waiting for it (Ctrl-C stops)")
                said = True
        if stop.wait(DISPATCHER_POLL_SECONDS):
            return False


def serve(port: int, dispatcher: str | None, host: str, work_dir: str | None,
          announce: Callable[[str], None] = print) -> None:
    """Start a dispatcher (or, given `dispatcher`, a worker) and serve until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if dispatcher is not None:  # the port was checked by the CLI, before TensorFlow's import
        parse_address(dispatcher)  # a malformed address is refused before any wait
        if not wait_for_dispatcher(dispatcher, stop, announce):
            announce("stopped before the dispatcher answered")
            return
    try:
        if dispatcher is None:
            server, role = start_dispatcher(port, work_dir), "dispatcher"
        else:
            server, role = start_worker(port, dispatcher, host), f"worker of {dispatcher}"
    except RuntimeError as error:  # TensorFlow's "Could not start gRPC server": a port taken since the check
        raise ReviewflowError(f"the tf.data service could not start on port {port} ({error}): pass another "
                              "--port.") from None
    local = is_loopback(host)
    if local:
        check_loopback_only()
    listening = ", ".join(f"[{ip}]:{p}" if ":" in ip else f"{ip}:{p}" for ip, p in listening_addresses())
    announce(f"tf.data service {role} ready at {PROTOCOL}://{host}:{bound_port(server)} (listening on "
             f"{listening}{'' if local else ': ALL interfaces, no authentication'}); Ctrl-C stops it")
    sys.stdout.flush()  # whoever started us waits for that line, through a pipe
    stop.wait()
    server.stop()
    announce(f"tf.data service {role} stopped")
