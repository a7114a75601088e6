"""`serve`: bind the port, load every run, then run the HTTP server (uvicorn) on it until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
from pathlib import Path

from models.serving.app import Metrics, Server, configure_logging, load_served_model
from models.serving.batching import BatchSettings
from models.serving.protocols import Limits
from pipeline.errors import ReviewflowError
from pipeline.ports import bound_socket, refusing_busy_ports

GRACEFUL_SHUTDOWN_S = 30   # SIGTERM: requests in flight get this long to finish
LISTEN_BACKLOG = 2048      # uvicorn's default: connections the kernel queues before the server accepts them


# What ends a model's name in /v1/models/NAME:predict (or its path segment, or the path): never part of one.
URL_DELIMITERS = "/:?#"


def served_names(runs: list[Path], names: list[str] | None) -> list[str]:
    """Each run's name: the one given, else its directory's; two runs under one name are refused."""
    chosen = names or [Path(run).resolve().name for run in runs]
    seen = {}
    for run, name in zip(runs, chosen):
        if not name or any(character in name for character in URL_DELIMITERS):
            raise ReviewflowError(f"{run}: {name!r} cannot be a model name in a URL (none of {URL_DELIMITERS!r}); "
                                  "give --name NAME.")
        if name in seen:
            raise ReviewflowError(f"{seen[name]} and {run} would both be served as {name!r}; give each a --name.")
        seen[name] = run
    return chosen


def make_server(runs: list[Path], names: list[str] | None, batch: BatchSettings, limits: Limits,
                max_body_bytes: int, log_every: int) -> Server:
    """Every run loaded and warmed up (the first that cannot load stops everything, before the port listens)."""
    metrics = Metrics()
    models = {}
    for run, name in zip(runs, served_names(runs, names)):
        models[name] = load_served_model(name, Path(run), batch,
                                         on_batch=lambda size, name=name: metrics.batch_size.labels(name).observe(size))
    return Server(models, limits, max_body_bytes, log_every, metrics)


def serve(runs: list[Path], names: list[str] | None, host: str, port: int, max_batch_size: int, max_wait_s: float,
          max_instances: int, max_review_bytes: int, max_body_bytes: int, log_every: int, announce=print) -> None:
    import uvicorn

    # Bound before the runs load: a port in use is refused at once, not by uvicorn's log after minutes of
    # loading; it listens only once they have loaded.
    with bound_socket(host, port) as sock:
        server = make_server(runs, names, BatchSettings(max_batch_size, max_wait_s),
                             Limits(max_instances, max_review_bytes), max_body_bytes, log_every)
        with refusing_busy_ports(host, port, sock):
            sock.listen(LISTEN_BACKLOG)
        configure_logging()
        announce(f"serving {', '.join(server.models)} on http://{host}:{port} (TF Serving REST: "
                 "/v1/models/NAME:predict; KServe V2: /v2/models/NAME/infer; metrics: /metrics); no authentication")
        config = uvicorn.Config(server.app(), host=host, port=port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, lifespan="on", backlog=LISTEN_BACKLOG)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it found: with
        # this one, that ends nothing, and a server stopped by SIGTERM exits 0 (as a service manager expects).
        signal.signal(signal.SIGTERM, lambda *_: None)
        uvicorn.Server(config).run(sockets=[sock])   # it accepts on the socket above
