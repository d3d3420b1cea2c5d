"""Claiming on a real PostgreSQL and a real MariaDB, in one process: two connections stand in
for two flushers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.db import connections, transaction
from django.utils import timezone

import django_tracify as tracify
from django_tracify import outbox
from django_tracify.delivery.flushing import flush
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.factories import OutboxRow
from tests.services import MariaDBServer, PostgresServer
from tracify_receiver import Receiver

DBNAME = "tracify_claims"
FLUSHER = "tracify_claims"  # two aliases of one database: two connections, like two flushers
OTHER_FLUSHER = "tracify_claims_other"
# PostgreSQL: the same database through a connection whose own cursors bind server-side.
SERVER_BINDING = "tracify_pg_server_binding"


def _postgres_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    server: PostgresServer = request.getfixturevalue("postgres_server")
    # Made afresh: a database kept from an earlier run may hold another migration history.
    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DBNAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DBNAME}"')
    config = {**server.django_database(), "NAME": DBNAME}
    # A claim that waits for another's row locks instead of skipping them fails, not hangs.
    config["OPTIONS"] = {"options": "-c lock_timeout=3s"}
    return config


def _mariadb_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    server: MariaDBServer = request.getfixturevalue("mariadb_server")
    server.drop_database(DBNAME)
    server.create_database(DBNAME)
    config = server.django_database(DBNAME)
    # As above: a claim that waits for locks fails after 3 s.
    config["OPTIONS"] = {**config["OPTIONS"], "init_command": "SET innodb_lock_wait_timeout=3"}
    return config


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def claim_aliases(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any
) -> Iterator[str]:
    """A database of its own on the server, migrated, as two DATABASES aliases; the server."""
    config = (_postgres_config if request.param == "postgres" else _mariadb_config)(request)
    aliases = {FLUSHER: config, OTHER_FLUSHER: dict(config)}
    if request.param == "postgres":
        options = {**config["OPTIONS"], "server_side_binding": True}
        aliases[SERVER_BINDING] = {**config, "OPTIONS": options}
    # connections.settings is settings.DATABASES; configure_settings fills in the defaults.
    connections.settings.update(aliases)
    connections.configure_settings(connections.settings)
    try:
        with django_db_blocker.unblock():
            call_command("migrate", database=FLUSHER, verbosity=0)
        yield request.param
    finally:
        for alias in aliases:
            connections[alias].close()
            del connections[alias]
            del connections.settings[alias]


@pytest.fixture
def db_vendor(claim_aliases: str, django_db_blocker: Any) -> Iterator[str]:
    """An empty outbox on either server: "postgres" or "mariadb"."""
    with django_db_blocker.unblock():
        OutboxEvent.objects.using(FLUSHER).all().delete()
        FlushState.objects.using(FLUSHER).all().delete()
        yield claim_aliases
        for alias in (FLUSHER, OTHER_FLUSHER, SERVER_BINDING):
            if alias in connections.settings:
                connections[alias].close()


def pending(count: int) -> list[int]:
    return [row.id for row in OutboxRow.create_batch(count, using=FLUSHER)]


def claimed_ids(claim: outbox.Claim | None) -> list[int]:
    assert claim is not None
    return [row.id for row in claim.rows]


def test_overlapping_claims_never_return_the_same_row(db_vendor: str) -> None:
    ids = pending(10)
    now = timezone.now()
    with transaction.atomic(using=FLUSHER):
        # The first flusher's claim is not committed yet: its rows are locked, and look
        # pending to everyone else. SKIP LOCKED makes the second one pass them by.
        first = outbox.claim_batch(4, now=now, lease_seconds=60, using=FLUSHER)
        second = outbox.claim_batch(4, now=now, lease_seconds=60, using=OTHER_FLUSHER)
    third = outbox.claim_batch(4, now=now, lease_seconds=60, using=OTHER_FLUSHER)
    assert claimed_ids(first) == ids[:4]
    assert claimed_ids(second) == ids[4:8]
    assert claimed_ids(third) == ids[8:]
    assert outbox.claim_batch(4, now=now, lease_seconds=60, using=FLUSHER) is None
    tokens = OutboxEvent.objects.using(FLUSHER).values_list("claim_token", flat=True).distinct()
    assert len(set(tokens)) == 3


def test_settle_ignores_rows_whose_token_changed(db_vendor: str) -> None:
    (row_id,) = pending(1)
    now = timezone.now()
    slow = outbox.claim_batch(1, now=now, lease_seconds=30, using=FLUSHER)
    later = now + timedelta(seconds=31)
    assert outbox.requeue_expired(now=later, using=OTHER_FLUSHER) == 1
    fresh = outbox.claim_batch(1, now=later, lease_seconds=30, using=OTHER_FLUSHER)
    assert slow is not None and fresh is not None
    assert outbox.mark_sent(slow.token, [row_id], now=later, using=FLUSHER) == 0
    assert outbox.mark_retry(
        slow.token,
        [row_id],
        next_attempt_at=later,
        error="late",
        http_status=500,
        now=later,
        max_attempts=5,
        max_age_seconds=3600,
        using=FLUSHER,
    ) == (0, 0)
    row = OutboxEvent.objects.using(FLUSHER).get()
    assert (row.status, row.claim_token, row.attempts) == ("sending", fresh.token, 0)
    assert outbox.mark_sent(fresh.token, [row_id], now=later, using=OTHER_FLUSHER) == 1


def test_an_expired_lease_is_claimable_again(db_vendor: str) -> None:
    ids = pending(3)
    now = timezone.now()
    assert claimed_ids(outbox.claim_batch(10, now=now, lease_seconds=60, using=FLUSHER)) == ids
    during = now + timedelta(seconds=59)
    assert outbox.requeue_expired(now=during, using=OTHER_FLUSHER) == 0
    assert outbox.claim_batch(10, now=during, lease_seconds=60, using=OTHER_FLUSHER) is None
    after = now + timedelta(seconds=61)
    assert outbox.requeue_expired(now=after, using=OTHER_FLUSHER) == 3
    again = outbox.claim_batch(10, now=after, lease_seconds=60, using=OTHER_FLUSHER)
    assert claimed_ids(again) == ids
    assert set(OutboxEvent.objects.using(FLUSHER).values_list("attempts", flat=True)) == {0}


def test_flush_delivers_everything_once(
    db_vendor: str,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    shop_request: Callable[..., Any],
) -> None:
    receiver_settings(DATABASE=FLUSHER, BATCH_SIZE=7)
    for n in range(30):
        tracify.track_pageview(shop_request(f"/pg/{n}"))
    receiver.script("http_500")
    first = flush()
    assert (first.sent, first.retried) == (0, 7)
    OutboxEvent.objects.using(FLUSHER).update(next_attempt_at=timezone.now())
    second = flush()
    assert (second.sent, second.left) == (30, 0)
    assert len(receiver.accepted_events()) == 30
    assert receiver.duplicates() == {}
    assert FlushState.load(FLUSHER).last_outcome == FlushState.OK
    statuses = set(OutboxEvent.objects.using(FLUSHER).values_list("status", flat=True))
    assert statuses == {OutboxStatus.SENT}


def test_a_failed_enqueue_leaves_the_shops_transaction_usable(
    db_vendor: str, tracify_settings: Callable[..., None]
) -> None:
    from django.db import DataError

    from django_tracify.events.builders import Event

    tracify_settings(DATABASE=FLUSHER)
    with transaction.atomic(using=FLUSHER):
        kept = outbox.enqueue(Event("pageview", {"n": "before"}))
        # A real error inside the transaction: PostgreSQL's jsonb refuses NUL characters;
        # MariaDB (strict mode, its default) an event type longer than the column.
        bad = Event("pageview", {"n": "\x00"}) if db_vendor == "postgres" else Event("x" * 40, {})
        with pytest.raises(DataError):
            outbox.enqueue(bad)
        # Without a savepoint this would fail: "current transaction is aborted".
        after = outbox.enqueue(Event("pageview", {"n": "after"}))
    assert list(OutboxEvent.objects.using(FLUSHER).values_list("id", flat=True)) == [
        after.id,
        kept.id,
    ]


@pytest.mark.parametrize("alias", [FLUSHER, SERVER_BINDING])
def test_rows_stored_read_back_as_returned_and_show_in_the_query_log(
    db_vendor: str, tracify_settings: Callable[..., None], alias: str
) -> None:
    if alias not in connections.settings:
        pytest.skip("server-side binding is PostgreSQL's")
    from django.test.utils import CaptureQueriesContext

    from django_tracify.events.builders import Event

    tracify_settings(DATABASE=alias)
    payload = {"type": "purchase", "data": {"ORDERID": "A-1", "note": "ünïcode 'quoted'"}}
    with CaptureQueriesContext(connections[alias]) as queries:
        stored, created = outbox.store(Event("purchase", payload, "purchase:A-1"))
        assert outbox.add(Event("pageview", {"type": "pageview"}))
    assert created
    # The INSERT statements (bound server-side on PostgreSQL) still reach Django's query log.
    assert sum("INSERT INTO" in query["sql"] for query in queries.captured_queries) == 2
    fresh = OutboxEvent.objects.using(alias).get(id=stored.id)
    fields = [field.attname for field in OutboxEvent._meta.concrete_fields]
    assert [getattr(stored, name) for name in fields] == [getattr(fresh, name) for name in fields]
    assert fresh.payload == payload
    assert fresh.next_attempt_at == fresh.created_at
    assert OutboxEvent.objects.using(alias).filter(event_type="pageview").count() == 1
