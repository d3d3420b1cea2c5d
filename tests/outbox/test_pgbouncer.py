"""The outbox through PgBouncer in transaction pooling mode: the middleware's insert and four
flusher processes, every connection pooled, configured as docs/scaling.md says."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.http import HttpRequest, HttpResponse

from django_tracify.capture.middleware import TracifyMiddleware
from django_tracify.models import OutboxStatus
from tests.delivery.test_flush_concurrent import FLUSHERS, sent_by, status_counts
from tests.process_fixtures import (
    OutboxDatabase,
    Processes,
    database_alias,
    process_env,
    wait_until,
)
from tests.services import PostgresServer
from tracify_receiver import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PAGEVIEWS = 400


def pooled_transactions(pgbouncer: PostgresServer, dbname: str) -> int:
    """How many transactions PgBouncer has run on `dbname` (its admin console's SHOW STATS)."""
    with psycopg.connect(
        host=pgbouncer.host, port=pgbouncer.port, user=pgbouncer.user, dbname="pgbouncer"
    ) as admin:
        admin.autocommit = True
        rows = admin.execute("SHOW STATS").fetchall()
    counts: dict[str, Decimal] = {row[0]: row[1] for row in rows}
    return int(counts.get(dbname, 0))


def test_the_middleware_and_four_flushers_work_through_transaction_pooling(
    postgres_outbox: OutboxDatabase,
    pgbouncer_server: PostgresServer,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    processes: Processes,
    shop_request: Callable[..., Any],
    django_db_blocker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = {
        **postgres_outbox.config,
        "HOST": pgbouncer_server.host,
        "PORT": str(pgbouncer_server.port),
        # A server-side cursor would outlive the transaction its server connection served.
        "DISABLE_SERVER_SIDE_CURSORS": True,
    }
    pooled = OutboxDatabase(f"{postgres_outbox.alias}_pooled", config)
    with database_alias(pooled.alias, config, django_db_blocker):
        env = process_env(pooled, receiver)
        loop = ("tracify_flush", "--loop", "--interval", "0.1", "--batch-size", "20", "-v", "2")
        flushers = [processes.manage(f"flusher-{n}", *loop, env=env) for n in range(FLUSHERS)]
        wait_until(
            lambda: all(f.output().count(", left 0") for f in flushers),
            60,
            lambda: "\n".join(f"{f.name}:\n{f.output()}" for f in flushers),
        )
        receiver_settings(DATABASE=pooled.alias)

        def page(request: HttpRequest) -> HttpResponse:
            return HttpResponse("<p>a product</p>")

        middleware = TracifyMiddleware(page)
        with caplog.at_level(logging.WARNING, logger="django_tracify"):
            for n in range(PAGEVIEWS):
                middleware(shop_request(f"/pooled/{n}/")).close()
        # The middleware swallows errors: a failed insert would show only in the log.
        assert [r.getMessage() for r in caplog.records] == []

        wait_until(
            lambda: status_counts(postgres_outbox) == {OutboxStatus.SENT: PAGEVIEWS},
            120,
            lambda: f"outbox {status_counts(postgres_outbox)}, receiver {receiver.counters()}",
        )
        assert processes.stop(*flushers) == [0] * FLUSHERS
    delivered = receiver.count_by(lambda event: event["url"])
    assert len(delivered) == PAGEVIEWS
    assert {url: n for url, n in delivered.items() if n > 1} == {}
    assert sum(sent_by(f) for f in flushers) == PAGEVIEWS
    # Every insert, claim and settle was a pooled transaction, not a direct connection.
    assert pooled_transactions(pgbouncer_server, config["NAME"]) > PAGEVIEWS
