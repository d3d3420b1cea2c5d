"""A local redis-server without persistence, for the Celery tests."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.services.common import (
    HOST,
    SERVICES_DIR,
    START_TIMEOUT,
    PortState,
    ServiceUnavailable,
    exchange,
    locked,
    os_errors_as_unavailable,
    run,
    with_log,
)

REDIS_PORT = 63799


def start_redis(port: int = REDIS_PORT, base_dir: Path | None = None) -> str:
    """Start redis-server on 127.0.0.1 without persistence (or reuse it); return its URL.

    Its files (pid file, log) go to ``base_dir``, by default ``<repo>/.services/redis``.
    Raises ServiceUnavailable when it cannot start.
    """
    base = Path(base_dir).absolute() if base_dir is not None else SERVICES_DIR / "redis"
    url = f"redis://{HOST}:{port}/0"
    log = base / f"redis-{port}.log"
    pid_file = base / f"redis-{port}.pid"
    with os_errors_as_unavailable("Redis"), locked(base / f"redis-{port}.lock"):
        state = probe_redis(port)
        if state == "other":
            raise ServiceUnavailable(
                f"port {port} on {HOST} is in use by something that is not Redis"
            )
        if state == "ours":
            return url
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise ServiceUnavailable(
                "redis-server is not on PATH: run scripts/install-system-deps.sh as root"
            )
        command = [
            redis_server,
            *("--port", str(port), "--bind", HOST, "--protected-mode", "yes"),
            *("--save", "", "--appendonly", "no", "--dir", str(base)),
            *("--daemonize", "yes", "--pidfile", str(pid_file)),
            *("--logfile", str(log)),
        ]
        try:
            result = run(command, timeout=START_TIMEOUT, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(with_log("redis-server did not daemonize", log)) from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ServiceUnavailable(with_log(f"redis-server failed: {output}", log))
        deadline = time.monotonic() + START_TIMEOUT
        while probe_redis(port) != "ours":
            if time.monotonic() > deadline or _daemon_died(pid_file):
                raise ServiceUnavailable(with_log(f"Redis on port {port} did not come up", log))
            time.sleep(0.05)
    return url


def stop_redis(port: int = REDIS_PORT) -> None:
    """Shut down the Redis server on ``port`` without saving; a no-op if none runs there."""
    if probe_redis(port) != "ours":
        return
    exchange(port, b"SHUTDOWN NOSAVE\r\n")
    deadline = time.monotonic() + START_TIMEOUT
    while probe_redis(port) != "free":
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"Redis on port {port} did not shut down")
        time.sleep(0.05)


def _daemon_died(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False  # not written yet
    return not Path(f"/proc/{pid}").exists()


def probe_redis(port: int) -> PortState:
    answer = exchange(port, b"PING\r\n")
    if answer is None:
        return "free"
    return "ours" if answer.startswith(b"+PONG") else "other"
