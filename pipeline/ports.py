"""The servers' ports (`serve`, `data-service`): a port in use is refused by name, with the fix."""

from __future__ import annotations

import contextlib
import errno
import socket
from typing import Iterator

from pipeline.errors import ReviewflowError


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` ("": every address) as uvicorn binds one, not yet listening."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a stopped server's TIME_WAIT is no owner
    with refusing_busy_ports(host, port, sock):
        sock.bind((host, port))
    return sock


@contextlib.contextmanager
def refusing_busy_ports(host: str, port: int, sock: socket.socket) -> Iterator[None]:
    """An OSError of binding or listening on `sock` as a ReviewflowError that names the port and the fix."""
    where = f"port {port} on {host}" if host else f"port {port}"
    try:
        yield
    except OSError as error:
        sock.close()
        # At bind: a server listens there. At listen: another one bound it too meanwhile.
        if error.errno == errno.EADDRINUSE:
            raise ReviewflowError(f"{where} is in use (another server?): stop it, or pass another --port.") from None
        raise ReviewflowError(f"cannot listen on {where}: {error.strerror or error}. Pass a --host this machine has "
                              "and a --port you may use (below 1024 needs root).") from None
