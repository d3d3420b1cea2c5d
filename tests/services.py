"""Local PostgreSQL, Redis and Chromium for the tests, the benchmarks and the soak runs.

Each server runs in the background under ``<repo>/.services`` and outlives the process that
started it: a later call (or a later test run, or ``.ci/run``) that finds it answering on its
port reuses it. From a shell::

    python tests/services.py start     # or: stop, status
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pwd
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_DIR = REPO_ROOT / ".services"
HOST = "127.0.0.1"

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 54329
PG_USER = "postgres"
PG_DBNAME = "tracify"
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root

REDIS_PORT = 63799

CHROMIUM_PATH = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps dialling Google's hosts, which this closed
# network refuses; --no-sandbox because CI runs as root. Callers add --headless themselves.
CHROMIUM_ARGS: list[str] = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]

START_TIMEOUT = 60.0
PROBE_TIMEOUT = 2.0
# sun_path is 108 bytes with its NUL; PostgreSQL adds "/.s.PGSQL.<port>" to the folder.
MAX_SOCKET_DIR_LENGTH = 80

POSTGRES_TEST_SETTINGS = {
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "30min",
    "max_wal_size": "1GB",
    "jit": "off",
    "log_min_messages": "warning",
}

PortState = Literal["free", "ours", "other"]


class ServiceUnavailable(Exception):
    """A local service could not be started or reached; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PostgresServer:
    """Where a running PostgreSQL server is, and how Django connects to it."""

    host: str
    port: int
    user: str
    dbname: str
    password: str = ""

    @property
    def url(self) -> str:
        return f"postgres://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def conninfo(self) -> str:
        """A libpq connection string, for ``psycopg.connect``."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    def django_database(self) -> dict[str, Any]:
        """One entry of Django's ``DATABASES``."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": self.dbname,
            "USER": self.user,
            "PASSWORD": self.password,
            "HOST": self.host,
            "PORT": str(self.port),
        }

    def __str__(self) -> str:
        return self.url


# --- PostgreSQL -----------------------------------------------------------------------------


def start_postgres(base_dir: Path | None = None, port: int = PG_PORT) -> PostgresServer:
    """Start PostgreSQL (or reuse the one already on ``port``) with database ``tracify``.

    The cluster lives in ``base_dir`` (default ``<repo>/.services/postgres``): data in
    ``data/``, the log in ``postgres.log``. Raises ServiceUnavailable when it cannot start.
    """
    base = _postgres_base(base_dir)
    with _os_errors_as_unavailable("PostgreSQL"), _locked(base / "start.lock"):
        state = _probe_postgres(port)
        if state == "other":
            raise ServiceUnavailable(
                f"port {port} on {HOST} is in use by something that is not PostgreSQL"
            )
        if state == "free":
            _cold_start_postgres(base, port)
        else:
            _wait_for_postgres(port, base)
        server = PostgresServer(host=HOST, port=port, user=PG_USER, dbname=PG_DBNAME)
        _ensure_database(server)
    return server


def stop_postgres(base_dir: Path | None = None) -> None:
    """Stop the PostgreSQL server of ``base_dir`` if it runs; a no-op otherwise."""
    data = _postgres_base(base_dir) / "data"
    if not (data / "postmaster.pid").exists():
        return
    pg_ctl = _pg_bin("pg_ctl")
    result = _run_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"])
    if result.returncode != 0:
        status = _run_as_postgres([pg_ctl, "-D", str(data), "status"])
        if status.returncode != 3:  # 3: not running, so the pid file was stale
            raise ServiceUnavailable(f"pg_ctl stop failed: {result.stderr.strip()}")


def _postgres_base(base_dir: Path | None) -> Path:
    if base_dir is not None:
        return Path(base_dir).absolute()
    default = SERVICES_DIR / "postgres"
    if os.geteuid() == 0 and not _reachable_by_postgres(default.parent):
        # A checkout under a private folder (e.g. /root) is out of the postgres user's reach.
        return Path(tempfile.gettempdir()) / "tracify-services" / "postgres"
    return default


def _cold_start_postgres(base: Path, port: int) -> None:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    data, log = base / "data", base / "postgres.log"
    socket_dir = _socket_dir(base, port)
    _give_to_postgres(base, socket_dir)
    if log.exists():
        _chown_to_postgres(log)
    if os.geteuid() == 0 and not _reachable_by_postgres(base):
        raise ServiceUnavailable(
            f"the {PG_OS_USER} OS user cannot write to {base} (a parent folder is private): "
            "pass a base_dir it can reach"
        )

    if not (data / "PG_VERSION").exists():
        if data.exists():  # left half-made by an interrupted initdb
            shutil.rmtree(data)
        _run_checked(
            [
                *(initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "--encoding=UTF8"),
                *("--locale=C", "--no-sync", "--no-instructions"),
            ],
            "initdb",
            log,
        )
    _write_postgres_config(data, port, socket_dir)
    _remove_stale_lock_files(data, socket_dir, port)

    try:
        result = _run_as_postgres(
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", str(int(START_TIMEOUT)), "start"],
            timeout=START_TIMEOUT + 30,
        )
    except subprocess.TimeoutExpired:
        raise ServiceUnavailable(_with_log("pg_ctl start timed out", log)) from None
    if result.returncode != 0:
        raise ServiceUnavailable(_with_log(f"pg_ctl start failed: {result.stderr.strip()}", log))
    _wait_for_postgres(port, base)


def _write_postgres_config(data: Path, port: int, socket_dir: Path) -> None:
    settings = {
        "listen_addresses": f"'{HOST}'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        **POSTGRES_TEST_SETTINGS,
    }
    conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
    _write_postgres_file(data / "tracify.conf", "# written by tests/services.py\n" + conf)
    main_conf = data / "postgresql.conf"
    include = "include_if_exists = 'tracify.conf'\n"
    if include not in main_conf.read_text():
        _write_postgres_file(main_conf, main_conf.read_text() + include)
    _write_postgres_file(
        data / "pg_hba.conf",
        "# written by tests/services.py: trust, on loopback only\n"
        "local all all trust\n"
        f"host all all {HOST}/32 trust\n",
    )


def _remove_stale_lock_files(data: Path, socket_dir: Path, port: int) -> None:
    # Left by a server that was killed: PostgreSQL refuses to start while one names a pid
    # that still exists, and a killed postmaster can linger as a zombie.
    for lock_file in (data / "postmaster.pid", socket_dir / f".s.PGSQL.{port}.lock"):
        if not lock_file.exists():
            continue
        first_line = lock_file.read_text().split("\n", 1)[0].strip()
        pid = int(first_line) if first_line.isdigit() else 0
        if _is_live_postgres(pid):
            raise ServiceUnavailable(
                f"PostgreSQL (pid {pid}) already runs with {lock_file} but does not answer on "
                f"port {port}: stop it first (stop_postgres())"
            )
        lock_file.unlink()


def _is_live_postgres(pid: int) -> bool:
    try:
        # "<pid> (<command>) <state> ...", and a zombie ("Z") is as good as gone.
        stat = Path(f"/proc/{pid}/stat").read_text() if pid else ""
    except OSError:
        return False
    command = stat[stat.find("(") + 1 : stat.rfind(")")]
    state = stat[stat.rfind(")") + 2 : stat.rfind(")") + 3]
    return command in {"postgres", "postmaster"} and state not in {"Z", "X"}


def _run(
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


def _wait_for_postgres(port: int, base: Path) -> None:
    pg_isready = _pg_bin("pg_isready")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        result = _run(
            [
                *(pg_isready, "-q", "-t", "2", "-h", HOST, "-p", str(port)),
                *("-U", PG_USER, "-d", "postgres"),
            ]
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                _with_log(
                    f"PostgreSQL on port {port} not ready in {START_TIMEOUT:.0f}s",
                    base / "postgres.log",
                )
            )
        time.sleep(0.1)


def _ensure_database(server: PostgresServer) -> None:
    exists = _psql(server, f"SELECT 1 FROM pg_database WHERE datname = '{server.dbname}'")
    if exists.strip() == "1":
        return
    try:
        _psql(server, f'CREATE DATABASE "{server.dbname}"')
    except ServiceUnavailable as err:
        if "already exists" not in err.reason:  # created meanwhile by another process
            raise


def _psql(server: PostgresServer, sql: str) -> str:
    command = [
        _pg_bin("psql"),
        *("-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"),
        *("-h", server.host, "-p", str(server.port), "-U", server.user, "-d", "postgres"),
        *("-c", sql),
    ]
    result = _run(command, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if result.returncode != 0:
        raise ServiceUnavailable(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result.stdout


def _probe_postgres(port: int) -> PortState:
    # An SSLRequest gets a one-byte answer, "S" or "N", from any PostgreSQL server.
    answer = _exchange(port, struct.pack("!ii", 8, 80877103))
    if answer is None:
        return "free"
    return "ours" if answer[:1] in {b"S", b"N"} else "other"


def _pg_bin(name: str) -> str:
    candidate = PG_BINDIR / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise ServiceUnavailable(
            f"PostgreSQL's {name} is not in {PG_BINDIR} nor on PATH: "
            "run scripts/install-system-deps.sh as root"
        )
    return found


def _socket_dir(base: Path, port: int) -> Path:
    preferred = base / "run"
    if len(str(preferred)) <= MAX_SOCKET_DIR_LENGTH:
        return preferred
    return Path(tempfile.gettempdir()) / f"tracify-pg-{port}"


def _postgres_ids() -> tuple[int, int] | None:
    """The uid and gid to run PostgreSQL as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise ServiceUnavailable(
            f"running as root, and there is no {PG_OS_USER!r} OS user to run PostgreSQL as"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _give_to_postgres(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _chown_to_postgres(folder)


def _chown_to_postgres(path: Path) -> None:
    ids = _postgres_ids()
    if ids is not None:
        os.chown(path, *ids)


def _reachable_by_postgres(path: Path) -> bool:
    ids = _postgres_ids()
    if ids is None:
        return True
    if not path.exists():
        return _reachable_by_postgres(path.parent) if path.parent != path else True
    result = _run_as_postgres(["test", "-x", str(path)])
    return result.returncode == 0


def _run_as_postgres(
    command: Sequence[str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    ids = _postgres_ids()
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    if ids is not None:
        user, group = ids
        extra_groups = os.getgrouplist(PG_OS_USER, group)
    return _run(
        command,
        timeout=timeout,
        user=user,
        group=group,
        extra_groups=extra_groups,
        # Its own session, so that a Ctrl-C to the test run does not stop the server too.
        start_new_session=True,
        cwd="/",
    )


def _run_checked(command: Sequence[str], what: str, log: Path) -> None:
    try:
        result = _run_as_postgres(command)
    except subprocess.TimeoutExpired:
        raise ServiceUnavailable(f"{what} timed out") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceUnavailable(_with_log(f"{what} failed: {output}", log))


def _write_postgres_file(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
    _chown_to_postgres(path)


# --- Redis ----------------------------------------------------------------------------------


def start_redis(port: int = REDIS_PORT, base_dir: Path | None = None) -> str:
    """Start redis-server on 127.0.0.1 without persistence (or reuse it); return its URL.

    Its files (pid file, log) go to ``base_dir``, by default ``<repo>/.services/redis``.
    Raises ServiceUnavailable when it cannot start.
    """
    base = Path(base_dir).absolute() if base_dir is not None else SERVICES_DIR / "redis"
    url = f"redis://{HOST}:{port}/0"
    log = base / f"redis-{port}.log"
    pid_file = base / f"redis-{port}.pid"
    with _os_errors_as_unavailable("Redis"), _locked(base / f"redis-{port}.lock"):
        state = _probe_redis(port)
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
            result = _run(command, timeout=START_TIMEOUT, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(_with_log("redis-server did not daemonize", log)) from None
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            raise ServiceUnavailable(_with_log(f"redis-server failed: {output}", log))
        deadline = time.monotonic() + START_TIMEOUT
        while _probe_redis(port) != "ours":
            if time.monotonic() > deadline or _daemon_died(pid_file):
                raise ServiceUnavailable(_with_log(f"Redis on port {port} did not come up", log))
            time.sleep(0.05)
    return url


def stop_redis(port: int = REDIS_PORT) -> None:
    """Shut down the Redis server on ``port`` without saving; a no-op if none runs there."""
    if _probe_redis(port) != "ours":
        return
    _exchange(port, b"SHUTDOWN NOSAVE\r\n")
    deadline = time.monotonic() + START_TIMEOUT
    while _probe_redis(port) != "free":
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"Redis on port {port} did not shut down")
        time.sleep(0.05)


def _daemon_died(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return False  # not written yet
    return not Path(f"/proc/{pid}").exists()


def _probe_redis(port: int) -> PortState:
    answer = _exchange(port, b"PING\r\n")
    if answer is None:
        return "free"
    return "ours" if answer.startswith(b"+PONG") else "other"


# --- Chromium -------------------------------------------------------------------------------


def chromium_executable() -> str | None:
    """The path of Debian's Chromium, or None when it is not installed."""
    if CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK):
        return str(CHROMIUM_PATH)
    return shutil.which("chromium")


# --- shared ---------------------------------------------------------------------------------


def _exchange(port: int, message: bytes) -> bytes | None:
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
def _os_errors_as_unavailable(service: str) -> Iterator[None]:
    try:
        yield
    except OSError as err:  # e.g. a folder left by another user
        raise ServiceUnavailable(f"{service} could not start: {err}") from err


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise starts across processes (e.g. pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _with_log(message: str, log: Path, lines: int = 15) -> str:
    try:
        tail = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return message
    return message + f"\n--- last lines of {log} ---\n" + "\n".join(tail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start, stop or look at the local PostgreSQL and Redis used by the tests."
    )
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("service", nargs="?", choices=["postgres", "redis"])
    args = parser.parse_args(argv)
    wanted = [args.service] if args.service else ["postgres", "redis"]
    labels = {"free": "not running", "ours": "running", "other": "port taken by another program"}
    try:
        if "postgres" in wanted:
            if args.action == "start":
                began = time.monotonic()
                server = start_postgres()
                print(f"postgres: {server.url} (ready in {time.monotonic() - began:.1f}s)")
            elif args.action == "stop":
                stop_postgres()
                print("postgres: stopped")
            else:
                print(f"postgres: {labels[_probe_postgres(PG_PORT)]} on port {PG_PORT}")
        if "redis" in wanted:
            if args.action == "start":
                print(f"redis: {start_redis()}")
            elif args.action == "stop":
                stop_redis()
                print("redis: stopped")
            else:
                print(f"redis: {labels[_probe_redis(REDIS_PORT)]} on port {REDIS_PORT}")
    except ServiceUnavailable as err:
        print(f"services: {err.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
