"""A local PostgreSQL 15 cluster under ``<repo>/.services/postgres``, run as the postgres user."""

from __future__ import annotations

import os
import pwd
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

PG_BINDIR = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 54329
PG_USER = "postgres"
PG_DBNAME = "tracify"
PG_OS_USER = "postgres"  # PostgreSQL refuses to run as root


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


def start_postgres(base_dir: Path | None = None, port: int = PG_PORT) -> PostgresServer:
    """Start PostgreSQL (or reuse the one already on ``port``) with database ``tracify``.

    The cluster lives in ``base_dir`` (default ``<repo>/.services/postgres``): data in
    ``data/``, the log in ``postgres.log``. Raises ServiceUnavailable when it cannot start.
    """
    base = _postgres_base(base_dir)
    with os_errors_as_unavailable("PostgreSQL"), locked(base / "start.lock"):
        state = probe_postgres(port)
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
        raise ServiceUnavailable(with_log("pg_ctl start timed out", log)) from None
    if result.returncode != 0:
        raise ServiceUnavailable(with_log(f"pg_ctl start failed: {result.stderr.strip()}", log))
    _wait_for_postgres(port, base)


def _write_postgres_config(data: Path, port: int, socket_dir: Path) -> None:
    settings = {
        "listen_addresses": f"'{HOST}'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        **POSTGRES_TEST_SETTINGS,
    }
    conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
    _write_postgres_file(data / "tracify.conf", "# written by tests/services/postgres.py\n" + conf)
    main_conf = data / "postgresql.conf"
    include = "include_if_exists = 'tracify.conf'\n"
    if include not in main_conf.read_text():
        _write_postgres_file(main_conf, main_conf.read_text() + include)
    _write_postgres_file(
        data / "pg_hba.conf",
        "# written by tests/services/postgres.py: trust, on loopback only\n"
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


def _wait_for_postgres(port: int, base: Path) -> None:
    pg_isready = _pg_bin("pg_isready")
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        result = run(
            [
                *(pg_isready, "-q", "-t", "2", "-h", HOST, "-p", str(port)),
                *("-U", PG_USER, "-d", "postgres"),
            ]
        )
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                with_log(
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
    result = run(command, timeout=60, env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
    if result.returncode != 0:
        raise ServiceUnavailable(f"psql {sql!r} failed: {result.stderr.strip()}")
    return result.stdout


def probe_postgres(port: int) -> PortState:
    # An SSLRequest gets a one-byte answer, "S" or "N", from any PostgreSQL server.
    answer = exchange(port, struct.pack("!ii", 8, 80877103))
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
    return run(
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
        raise ServiceUnavailable(with_log(f"{what} failed: {output}", log))


def _write_postgres_file(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
    _chown_to_postgres(path)
