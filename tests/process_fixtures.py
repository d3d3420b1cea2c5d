"""Databases and processes for the multi-process tests (flushers, a Celery worker and beat).

A plugin listed in conftest's pytest_plugins. Each test gets a fresh, migrated outbox database
of its own (copied from a template migrated once per session), reachable from the test under
a DATABASES alias and from the processes it starts through tests/process_settings.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connections

from tests.services import REPO_ROOT, MariaDBServer, PostgresServer
from tracify_receiver import Receiver

PROCESS_SETTINGS = "tests.process_settings"
STOP_TIMEOUT = 20.0
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class OutboxDatabase:
    """A database the test (through `alias`) and its processes (through `config`) share."""

    alias: str
    config: dict[str, Any]


def process_env(database: OutboxDatabase, receiver: Receiver, **tracify: Any) -> dict[str, str]:
    """The environment of a process that uses tests/process_settings.py; `tracify` adds keys."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": PROCESS_SETTINGS,
        "TRACIFY_TEST_DATABASE": json.dumps(database.config),
        "TRACIFY_TEST_ENDPOINT": receiver.endpoint,
        "TRACIFY_TEST_API_KEY": receiver.token,
        "TRACIFY_TEST_OVERRIDES": json.dumps(tracify),
    }


def manage(*args: str, env: dict[str, str]) -> str:
    """Run `python -m django <args>` to completion; its stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def wait_until(condition: Callable[[], bool], timeout: float, failure: Callable[[], str]) -> None:
    """Poll `condition` until it holds; fail with `failure()` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g}s: {failure()}", pytrace=False)
        time.sleep(POLL_SECONDS)


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        # The whole process group: a Celery worker or a flusher, with anything it started.
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)


class Processes:
    """Starts processes in their own session, and never leaves one running after the test."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Started] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Started:
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                args,
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started = Started(name, process, log)
        self.started.append(started)
        return started

    def manage(self, name: str, *args: str, env: dict[str, str]) -> Started:
        return self.start(name, [sys.executable, "-m", "django", *args], env)

    def stop(self, *started: Started, signum: int = signal.SIGTERM) -> list[int]:
        """Signal them all, then wait for each to exit (SIGKILL after STOP_TIMEOUT).

        Their exit statuses, in order.
        """
        for each in started:
            each.signal(signum)
        statuses = []
        for each in started:
            try:
                statuses.append(each.process.wait(STOP_TIMEOUT))
            except subprocess.TimeoutExpired:
                each.signal(signal.SIGKILL)
                each.process.wait(STOP_TIMEOUT)
                pytest.fail(f"{each.name} did not stop on signal {signum}:\n{each.output()}")
        return statuses

    def kill_all(self) -> None:
        for started in self.started:
            if started.process.poll() is None:
                started.signal(signal.SIGKILL)
                started.process.wait(STOP_TIMEOUT)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.kill_all()


@contextmanager
def database_alias(alias: str, config: dict[str, Any], django_db_blocker: Any) -> Iterator[None]:
    # connections.settings is settings.DATABASES; configure_settings fills in the defaults.
    connections.settings[alias] = dict(config)
    connections.configure_settings(connections.settings)
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def _migrate(config: dict[str, Any]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": PROCESS_SETTINGS,
        "TRACIFY_TEST_DATABASE": json.dumps(config),
        "TRACIFY_TEST_ENDPOINT": "http://127.0.0.1:9/api/v1/events",
        "TRACIFY_TEST_API_KEY": "unused",
    }
    manage("migrate", "--no-input", "--verbosity", "0", env=env)


# --- PostgreSQL -----------------------------------------------------------------------------


def _admin_sql(server: PostgresServer, sql: str) -> None:
    with psycopg.connect(server.conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A migrated database that each test's fresh database is copied from."""
    name = f"tracify_template_{uuid.uuid4().hex[:8]}"
    _admin_sql(postgres_server, f'CREATE DATABASE "{name}"')
    try:
        _migrate({**postgres_server.django_database(), "NAME": name})
        yield name
    finally:
        _admin_sql(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_outbox(
    postgres_server: PostgresServer, postgres_template: str, django_db_blocker: Any
) -> Iterator[OutboxDatabase]:
    """A fresh, migrated PostgreSQL database for this test alone, dropped after it."""
    name = f"tracify_test_{uuid.uuid4().hex[:8]}"
    _admin_sql(postgres_server, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    config = {**postgres_server.django_database(), "NAME": name}
    try:
        with database_alias(name, config, django_db_blocker):
            yield OutboxDatabase(name, config)
    finally:
        _admin_sql(postgres_server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- MariaDB --------------------------------------------------------------------------------

# The tables a test's processes write; emptied before each test instead of a fresh database,
# since MariaDB has no template databases to copy from.
MARIADB_TABLES = ("django_tracify_outboxevent", "django_tracify_flushstate")


@pytest.fixture(scope="session")
def mariadb_database(mariadb_server: MariaDBServer) -> Iterator[dict[str, Any]]:
    """A migrated database of this test session on the test MariaDB; its DATABASES entry."""
    name = f"tracify_test_{uuid.uuid4().hex[:8]}"
    mariadb_server.create_database(name)
    try:
        config = mariadb_server.django_database(name)
        _migrate(config)
        yield config
    finally:
        mariadb_server.drop_database(name)


@pytest.fixture
def mariadb_outbox(
    mariadb_server: MariaDBServer, mariadb_database: dict[str, Any], django_db_blocker: Any
) -> Iterator[OutboxDatabase]:
    """The session's MariaDB database with an empty outbox, for this test."""
    for table in MARIADB_TABLES:
        mariadb_server.execute(f"TRUNCATE TABLE `{table}`", database=mariadb_database["NAME"])
    alias = f"tracify_test_{uuid.uuid4().hex[:8]}"
    with database_alias(alias, mariadb_database, django_db_blocker):
        yield OutboxDatabase(alias, mariadb_database)


@pytest.fixture(
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def shared_outbox(request: pytest.FixtureRequest) -> OutboxDatabase:
    """A fresh outbox on each database that flushers can share: PostgreSQL, MariaDB."""
    database: OutboxDatabase = request.getfixturevalue(f"{request.param}_outbox")
    return database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_database(request: pytest.FixtureRequest) -> OutboxDatabase:
    """A fresh outbox for task workers and the test: an SQLite file, and PostgreSQL."""
    database: OutboxDatabase = request.getfixturevalue(f"{request.param}_outbox")
    return database


# --- SQLite ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite3"
    _migrate({"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)})
    return path


@pytest.fixture
def sqlite_outbox(
    sqlite_template: Path, tmp_path: Path, django_db_blocker: Any
) -> Iterator[OutboxDatabase]:
    """A fresh, migrated SQLite database file for this test alone."""
    path = tmp_path / "outbox.sqlite3"
    shutil.copyfile(sqlite_template, path)
    config = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}
    alias = f"tracify_test_{uuid.uuid4().hex[:8]}"
    with database_alias(alias, config, django_db_blocker):
        yield OutboxDatabase(alias, config)
