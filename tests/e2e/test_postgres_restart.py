"""`tracify_flush --loop` while its PostgreSQL server restarts, as in a failover or an upgrade.

A private cluster on a port of its own: the suite's shared server stays up.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

from django_tracify.models import OutboxEvent, OutboxStatus
from tests.delivery.test_flush_concurrent import enqueue_conversions, status_counts
from tests.process_fixtures import (
    OutboxDatabase,
    Processes,
    _migrate,
    database_alias,
    process_env,
    wait_until,
)
from tests.service_fixtures import skip_or_fail
from tests.services import HOST, ServiceUnavailable, start_postgres, stop_postgres
from tracify_receiver import Receiver, dedup_key

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[tuple[Path, int, dict[str, Any]]]:
    # Not tmp_path: pytest makes that private to root, out of the postgres user's reach.
    base = Path(tempfile.mkdtemp(prefix="tracify-pg-restart-"))
    port = free_port()
    try:
        server = start_postgres(base, port)
    except ServiceUnavailable as err:
        shutil.rmtree(base, ignore_errors=True)
        skip_or_fail(f"PostgreSQL is unavailable: {err.reason}")
    try:
        config = server.django_database()
        _migrate(config)
        yield base, port, config
    finally:
        stop_postgres(base)
        shutil.rmtree(base, ignore_errors=True)


def test_a_looping_flusher_delivers_again_after_its_postgresql_restarted(
    private_postgres: tuple[Path, int, dict[str, Any]],
    receiver: Receiver,
    processes: Processes,
    django_db_blocker: Any,
) -> None:
    base, port, config = private_postgres
    database = OutboxDatabase("restarting", config)
    env = process_env(database, receiver, BACKOFF_BASE_SECONDS=0)
    flusher = processes.manage(
        "flusher", "tracify_flush", "--loop", "--interval", "0.1", "-v", "2", env=env
    )

    def delivered(count: int) -> None:
        wait_until(
            lambda: status_counts(database) == {OutboxStatus.SENT: count},
            60,
            lambda: f"outbox {status_counts(database)}\n{flusher.output()}",
        )

    with database_alias(database.alias, config, django_db_blocker):
        before = enqueue_conversions(database, 10)
        delivered(10)
        passes_before = flusher.output().count(", left ")

        stop_postgres(base)
        # Passes fail while the server is down (the flusher keeps looping) ...
        failed_before = flusher.output().count("flush pass failed")
        wait_until(
            lambda: flusher.output().count("flush pass failed") > failed_before, 60, flusher.output
        )
        start_postgres(base, port)
        connections[database.alias].close()  # the test's own connection died with the server
        after = enqueue_conversions(database, 10, prefix="after-restart")
        # ... and once it is back, the same process delivers what was written since.
        delivered(20)

        assert processes.stop(flusher) == [0]
        assert flusher.output().count(", left ") > passes_before
        assert set(receiver.count_by(dedup_key)) == before | after
        assert OutboxEvent.objects.using(database.alias).count() == 20
