"""pytest fixtures for the real local services; a plugin listed in conftest's pytest_plugins.

A fixture whose service cannot start skips its tests with the reason, except under CI
(``CI=true``), where it fails them: CI must not pass by skipping what it was meant to run.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

from tests.services import (
    MariaDBServer,
    PostgresServer,
    ServiceUnavailable,
    chromium_executable,
    start_mariadb,
    start_pgbouncer,
    start_postgres,
    start_redis,
)


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test for ``reason``, or fail it when running under CI."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """PostgreSQL on 127.0.0.1:54329 with database ``tracify``, started once and left running."""
    try:
        return start_postgres()
    except ServiceUnavailable as err:
        skip_or_fail(f"PostgreSQL is unavailable: {err.reason}")


@pytest.fixture(scope="session")
def pgbouncer_server(postgres_server: PostgresServer) -> PostgresServer:
    """PgBouncer on 127.0.0.1:64329 in transaction pooling mode before ``postgres_server``."""
    try:
        return start_pgbouncer(postgres_server)
    except ServiceUnavailable as err:
        skip_or_fail(f"PgBouncer is unavailable: {err.reason}")


@pytest.fixture(scope="session")
def mariadb_server() -> MariaDBServer:
    """MariaDB on 127.0.0.1:33069 with database ``tracify``, started once and left running."""
    try:
        return start_mariadb()
    except ServiceUnavailable as err:
        skip_or_fail(f"MariaDB is unavailable: {err.reason}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:63799/0``, a Redis without persistence, started once and left running."""
    try:
        return start_redis()
    except ServiceUnavailable as err:
        skip_or_fail(f"Redis is unavailable: {err.reason}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The path of Debian's Chromium; run it with ``--headless`` and ``services.CHROMIUM_ARGS``."""
    path = chromium_executable()
    if path is None:
        skip_or_fail("Chromium is not installed: run scripts/install-system-deps.sh as root")
    return path
