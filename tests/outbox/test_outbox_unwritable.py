"""When the outbox cannot be written: the shop's transaction and its workers are unharmed."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connections, transaction
from django.test import Client

import django_tracify as tracify
from django_tracify.outbox import capture_problems, pause
from tests import middleware_lists, unix_socket_http
from tests.conftest import BROWSER_UA
from tests.process_fixtures import OutboxDatabase, Processes, database_alias, wait_until
from tests.services import REPO_ROOT, PostgresServer

ORDER = {"number": "A-1001", "total": "59.90", "currency": "EUR", "email": "jane@example.com"}

TRACKING_CALLS: dict[str, Callable[[Any], object]] = {
    "purchase": lambda request: tracify.track_purchase(ORDER, request=request),
    "conversion": lambda request: tracify.track_conversion("L-1", "10", "EUR", request=request),
    "pageview": lambda request: tracify.track_pageview(request),
    "invalid purchase": lambda request: tracify.track_purchase(
        {**ORDER, "total": "12,50"}, request=request
    ),
}


@pytest.fixture
def migration_lock(
    postgres_server: PostgresServer, postgres_outbox: OutboxDatabase
) -> Iterator[None]:
    """Another connection holds the outbox table's strongest lock, as a migration would."""
    with psycopg.connect(postgres_server.conninfo, dbname=postgres_outbox.alias) as migration:
        migration.execute("LOCK TABLE django_tracify_outboxevent IN ACCESS EXCLUSIVE MODE")
        yield
        migration.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("timeout", ["lock_timeout", "statement_timeout"])
@pytest.mark.parametrize("call", TRACKING_CALLS)
def test_a_tracking_statement_that_fails_leaves_the_checkout_committable(
    postgres_outbox: OutboxDatabase,
    migration_lock: None,
    shop_request: Callable[..., Any],
    tracify_settings: Callable[..., None],
    timeout: str,
    call: str,
) -> None:
    alias = postgres_outbox.alias
    tracify_settings(DATABASE=alias, RAISE_ERRORS=False)
    shop = connections[alias]
    with shop.cursor() as cursor:
        cursor.execute("CREATE TABLE shop_order (number text PRIMARY KEY, paid boolean)")
    with transaction.atomic(using=alias):
        with shop.cursor() as cursor:
            cursor.execute(f"SET LOCAL {timeout} = '100ms'")
            cursor.execute("INSERT INTO shop_order VALUES ('A-1001', false)")
        assert TRACKING_CALLS[call](shop_request("/checkout/")) is None
        with shop.cursor() as cursor:
            cursor.execute("UPDATE shop_order SET paid = true")
    with shop.cursor() as cursor:
        cursor.execute("SELECT number, paid FROM shop_order")
        assert cursor.fetchall() == [("A-1001", True)]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def database(self) -> dict[str, Any]:
        """A PostgreSQL DATABASES entry on this server, with the timeouts the README gives."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": "tracify",
            "USER": "shop",
            "HOST": "127.0.0.1",
            "PORT": self.port,
            # libpq's smallest connect timeout is 2 s.
            "OPTIONS": {"connect_timeout": 2, "options": "-c statement_timeout=2000"},
        }

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.accepted.append(connection)

    def connections(self) -> int:
        """How many connections came in so far, the ones not yet accepted included."""
        self.stopping.set()
        self.thread.join()
        self.listener.setblocking(False)
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except BlockingIOError:
                return len(self.accepted)

    def close(self) -> None:
        self.connections()
        for connection in self.accepted:
            connection.close()
        self.listener.close()


@pytest.fixture
def silent_outbox(
    django_db_blocker: Any, tracify_settings: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SilentServer]:
    """The outbox on a database alias of its own whose host never answers."""
    server = SilentServer()
    # However slow this machine, the second request comes within the pause.
    monkeypatch.setattr(pause, "PAUSE_SECONDS", 600.0)
    try:
        with database_alias("silent_outbox", server.database(), django_db_blocker):
            tracify_settings(DATABASE="silent_outbox", RAISE_ERRORS=False)
            yield server
    finally:
        server.close()


@pytest.mark.urls("tests.middleware_views")
def test_after_a_failed_write_the_next_request_does_not_wait_for_the_outbox(
    silent_outbox: SilentServer,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.MIDDLEWARE = [middleware_lists.TRACIFY]
    browser = Client(REMOTE_ADDR="203.0.113.7", headers={"user-agent": BROWSER_UA})
    with caplog.at_level(logging.ERROR, logger="django_tracify"):
        assert browser.get("/page/").status_code == 200  # its pageview timed out
        assert browser.get("/page/").status_code == 200
        assert browser.get("/product/").status_code == 200
    assert silent_outbox.connections() == 1
    failures = [r.getMessage() for r in caplog.records if "outbox database" in r.getMessage()]
    assert len(failures) == 1
    assert "'silent_outbox' failed (OperationalError" in failures[0]
    assert capture_problems.unsaved() == {capture_problems.OUTBOX_UNWRITABLE: 4}


def get(path: Path, url: str) -> int:
    # Below gunicorn's 30 s worker timeout: a worker that hangs fails the test, not restarts.
    return unix_socket_http.get(
        path, url, {"User-Agent": BROWSER_UA, "X-Forwarded-For": "203.0.113.7"}, timeout=20
    )


@pytest.mark.slow
def test_a_gunicorn_worker_is_not_held_by_an_outbox_that_never_answers(
    processes: Processes, tmp_path: Path
) -> None:
    server = SilentServer()
    try:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.outbox_alias_settings",
            "TRACIFY_TEST_OUTBOX_DATABASE": json.dumps(server.database()),
        }
        bind = tmp_path / "gunicorn.sock"
        site = processes.start(
            "gunicorn",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers=1",
                "--timeout=30",
                f"--bind=unix:{bind}",
                "django.core.wsgi:get_wsgi_application()",
            ],
            env,
        )
        wait_until(lambda: unix_socket_http.accepts(bind), 60, site.output)
        # One sync worker: each request waits until the one before it was closed, pageview
        # written (or not) included.
        statuses = [get(bind, url) for url in ("/page/", "/page/", "/product/", "/page/")]
        assert statuses == [200, 200, 200, 200]
        assert server.connections() == 1
        processes.stop(site)
    finally:
        server.close()
    log = site.output()
    assert log.count("tracking pauses for 600s") == 1, log
    assert "pageview not recorded: the outbox database 'outbox' failed (OperationalError" in log
