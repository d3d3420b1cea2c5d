"""A local MariaDB server under ``<repo>/.services/mariadb``, for the MariaDB outbox tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
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

MARIADB_PORT = 33069
MARIADB_USER = "root"  # passwordless, from 127.0.0.1 only (mariadb-install-db's "normal" auth)
MARIADB_DBNAME = "tracify"
MARIADB_BINDIRS = "/usr/sbin:/usr/bin"  # searched after PATH: mariadbd is in /usr/sbin

# Durability off: a test server is thrown away, and every fsync costs the shared machine.
MARIADB_TEST_SETTINGS = (
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-buffer-pool-size=128M",
    "--innodb-lock-wait-timeout=10",
    "--skip-log-bin",
    "--skip-name-resolve",
    "--max-connections=200",
)


@dataclass(frozen=True)
class MariaDBServer:
    """Where a running MariaDB server is, and how Django connects to it."""

    host: str
    port: int
    user: str
    dbname: str

    def django_database(self, name: str | None = None) -> dict[str, Any]:
        """One entry of Django's ``DATABASES`` (mysqlclient), for database ``name``."""
        return {
            "ENGINE": "django.db.backends.mysql",
            "NAME": name or self.dbname,
            "USER": self.user,
            "PASSWORD": "",
            "HOST": self.host,
            "PORT": str(self.port),
            "OPTIONS": {"charset": "utf8mb4"},
        }

    def execute(self, sql: str, database: str | None = None) -> list[tuple[Any, ...]]:
        """Run one statement in autocommit; its rows."""
        import MySQLdb

        connection = MySQLdb.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            database=database or "",
            charset="utf8mb4",
            connect_timeout=10,
        )
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            rows = list(cursor.fetchall())
            connection.commit()
            return rows
        finally:
            connection.close()

    def create_database(self, name: str) -> None:
        self.execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS `{name}`")

    def __str__(self) -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.dbname}"


def start_mariadb(base_dir: Path | None = None, port: int = MARIADB_PORT) -> MariaDBServer:
    """Start MariaDB on 127.0.0.1 (or reuse the one already on ``port``) with database
    ``tracify``.

    Its files live in ``base_dir`` (default ``<repo>/.services/mariadb``): data in ``data/``,
    the log in ``mariadb.log``. Raises ServiceUnavailable when it cannot start.
    """
    base = Path(base_dir).absolute() if base_dir is not None else SERVICES_DIR / "mariadb"
    server = MariaDBServer(host=HOST, port=port, user=MARIADB_USER, dbname=MARIADB_DBNAME)
    if importlib.util.find_spec("MySQLdb") is None:
        raise ServiceUnavailable("mysqlclient is not installed: pip install -e '.[test]'")
    with os_errors_as_unavailable("MariaDB"), locked(base / "start.lock"):
        state = probe_mariadb(port)
        if state == "other":
            raise ServiceUnavailable(
                f"port {port} on {HOST} is in use by something that is not MariaDB"
            )
        if state == "free":
            _cold_start(base, port)
        _wait_until_usable(server, base)
        server.create_database(server.dbname)
    return server


def stop_mariadb(base_dir: Path | None = None) -> None:
    """Stop the MariaDB server of ``base_dir`` if it runs; a no-op otherwise."""
    base = Path(base_dir).absolute() if base_dir is not None else SERVICES_DIR / "mariadb"
    pid = _live_pid(base / "mariadb.pid")
    if pid is None:
        return
    os.kill(pid, 15)
    deadline = time.monotonic() + START_TIMEOUT
    while _live_pid(base / "mariadb.pid") == pid:
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"MariaDB (pid {pid}) did not shut down")
        time.sleep(0.1)


def _cold_start(base: Path, port: int) -> None:
    data, log = base / "data", base / "mariadb.log"
    base.mkdir(parents=True, exist_ok=True)
    # MariaDB refuses to run as root unless told to, and CI runs as root.
    as_user = ["--user=root"] if os.geteuid() == 0 else []
    if not (data / "mysql").is_dir():
        if data.exists():  # left half-made by an interrupted install
            shutil.rmtree(data)
        _run_checked(
            [
                _binary("mariadb-install-db"),
                *("--no-defaults", f"--datadir={data}", *as_user),
                *("--auth-root-authentication-method=normal", "--skip-test-db"),
                "--skip-name-resolve",
            ],
            "mariadb-install-db",
            log,
        )
    stale_pid = base / "mariadb.pid"
    if _live_pid(stale_pid) is not None:
        raise ServiceUnavailable(
            f"MariaDB already runs with {stale_pid} but does not answer on port {port}"
        )
    command = [
        _binary("mariadbd"),
        *("--no-defaults", f"--datadir={data}", *as_user),
        *(f"--port={port}", f"--bind-address={HOST}", f"--socket={_socket(base, port)}"),
        *(f"--pid-file={stale_pid}", f"--log-error={log}"),
        *MARIADB_TEST_SETTINGS,
    ]
    # setsid --fork: the server outlives this process (and a Ctrl-C to the test run).
    _run_checked(["setsid", "--fork", *command], "mariadbd", log)


def _wait_until_usable(server: MariaDBServer, base: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            server.execute("SELECT 1")
            return
        except Exception as err:  # MySQLdb.OperationalError while it starts
            if time.monotonic() > deadline:
                problem = f"MariaDB on port {server.port} not usable: {err}"
                raise ServiceUnavailable(with_log(problem, base / "mariadb.log")) from err
        time.sleep(0.1)


def probe_mariadb(port: int) -> PortState:
    # A MySQL-protocol server greets first: protocol 10, then its version, e.g. 10.11.6-MariaDB.
    answer = exchange(port, b"")
    if answer is None:
        return "free"
    return "ours" if answer[4:5] == b"\x0a" and b"MariaDB" in answer else "other"


def _live_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if command in {"mariadbd", "mysqld"} else None


def _socket(base: Path, port: int) -> Path:
    # sun_path holds 108 bytes: a deep checkout gets its socket in /tmp instead.
    preferred = base / "mariadb.sock"
    return preferred if len(str(preferred)) < 100 else Path(f"/tmp/tracify-mariadb-{port}.sock")


def _binary(name: str) -> str:
    found = shutil.which(name, path=f"{os.environ.get('PATH', '')}:{MARIADB_BINDIRS}")
    if found is None:
        raise ServiceUnavailable(
            f"MariaDB's {name} is not installed: run scripts/install-system-deps.sh as root"
        )
    return found


def _run_checked(command: Sequence[str], what: str, log: Path) -> None:
    try:
        result = run(command, timeout=START_TIMEOUT, start_new_session=True, cwd="/")
    except subprocess.TimeoutExpired:
        raise ServiceUnavailable(with_log(f"{what} timed out", log)) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceUnavailable(with_log(f"{what} failed: {output}", log))
