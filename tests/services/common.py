"""What the local services share: where they live, how long to wait, how to probe and run."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = REPO_ROOT / ".services"
HOST = "127.0.0.1"

START_TIMEOUT = 60.0
PROBE_TIMEOUT = 2.0

PortState = Literal["free", "ours", "other"]


class ServiceUnavailable(Exception):
    """A local service could not be started or reached; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def run(
    command: Sequence[str], *, timeout: float | None = None, **options: Any
) -> subprocess.CompletedProcess[str]:
    """Run a service's tool quietly: no stdin, output captured as text, never raising on exit."""
    return subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        **options,
    )


def exchange(port: int, message: bytes) -> bytes | None:
    """Send ``message`` and return the first bytes of the answer; None if nothing listens."""
    try:
        with socket.create_connection((HOST, port), timeout=PROBE_TIMEOUT) as sock:
            sock.sendall(message)
            return sock.recv(64)
    except ConnectionRefusedError:
        return None
    except OSError:  # a listener that does not answer (or resets) is someone else's
        return b""


@contextlib.contextmanager
def os_errors_as_unavailable(service: str) -> Iterator[None]:
    try:
        yield
    except OSError as err:  # e.g. a folder left by another user
        raise ServiceUnavailable(f"{service} could not start: {err}") from err


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise starts across processes (e.g. pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def with_log(message: str, log: Path, lines: int = 15) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return message
    return message + f"\n--- last lines of {log} ---\n" + "\n".join(tail)
