"""HTTP to a server bound to a unix socket, as nginx talks to gunicorn or uvicorn there."""

from __future__ import annotations

import http.client
import socket
from pathlib import Path


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(str(self.socket_path))


def get(path: Path, target: str, headers: dict[str, str], timeout: float = 20) -> int:
    """GET `target` over the socket at `path`; the answer's status (its body is read)."""
    connection = UnixHTTPConnection(path, timeout=timeout)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def accepts(path: Path) -> bool:
    """True once something listens on the socket at `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(path))
    except OSError:
        return False
    return True
