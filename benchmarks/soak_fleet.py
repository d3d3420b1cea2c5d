"""The soak's processes: the gunicorn site and the flushers, its ports and its database
(PostgreSQL or MariaDB)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from tests.services import start_mariadb, start_postgres

REPO_ROOT = Path(__file__).resolve().parent.parent


class Fleet:
    """The gunicorn site and the flushers; each its own session, all stopped on exit."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                args,
                env=self.env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.running.append(process)
        return process

    def flusher(self, slot: int, batch_size: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "django", "tracify_flush", "--loop", "--interval", "0.2"]
        return self.start(f"flusher-{slot}", [*args, "--batch-size", str(batch_size)])

    def stop(self, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", *args], env=env, cwd=REPO_ROOT, check=True, timeout=300
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


@dataclass(frozen=True)
class SoakDatabase:
    """The soak's scratch database: its DATABASES entry, and plain SQL on it for the checks."""

    config: dict[str, Any]

    @property
    def is_mariadb(self) -> bool:
        return bool(self.config["ENGINE"].endswith("mysql"))

    @property
    def payload_text(self) -> str:
        """The payload column as text, in this database's SQL."""
        return "payload" if self.is_mariadb else "payload::text"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        c = self.config
        if self.is_mariadb:
            import MySQLdb

            connection = MySQLdb.connect(
                host=c["HOST"], port=int(c["PORT"]), user=c["USER"], database=c["NAME"]
            )
            try:
                cursor = connection.cursor()
                cursor.execute(sql, params)
                return list(cursor.fetchall())
            finally:
                connection.close()
        conninfo = f"host={c['HOST']} port={c['PORT']} user={c['USER']} dbname={c['NAME']}"
        with psycopg.connect(conninfo) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@contextmanager
def soak_database(kind: str, keep: bool) -> Iterator[SoakDatabase]:
    """A fresh database on the local PostgreSQL or MariaDB (`kind`), dropped afterwards."""
    name = f"tracify_soak_{uuid.uuid4().hex[:8]}"
    if kind == "mariadb":
        mariadb = start_mariadb()
        mariadb.create_database(name)
        try:
            yield SoakDatabase(mariadb.django_database(name))
        finally:
            if not keep:
                mariadb.drop_database(name)
        return
    server = start_postgres()
    with psycopg.connect(server.conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SoakDatabase({**server.django_database(), "NAME": name})
    finally:
        if not keep:
            with psycopg.connect(server.conninfo, dbname="postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
