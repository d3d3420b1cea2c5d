"""Many flusher processes on one outbox, on PostgreSQL and on MariaDB: each event delivered
once, none lost when a flusher is killed. Real processes (`manage.py tracify_flush`), a real
database server, the local receiver; every test gets an empty outbox."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable

import psycopg
import pytest
from django.db import connections
from django.db.models import Count

from django_tracify.delivery.flushing import flush
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.factories import OutboxRow
from tests.process_fixtures import OutboxDatabase, Processes, Started, process_env, wait_until
from tests.services import PostgresServer
from tracify_receiver import Receiver, dedup_key

pytestmark = pytest.mark.slow

FLUSHERS = 4
EVENTS = 5_000


def enqueue_conversions(database: OutboxDatabase, count: int, prefix: str = "mp") -> set[str]:
    """`count` valid conversion events in one insert; their keys, as the receiver sees them."""
    keys = [f"{prefix}-{n}" for n in range(count)]
    rows = [
        OutboxRow.build(
            event_type="conversion",
            data={"conversion_id": key, "currency": "EUR", "amount": "9.99"},
            dedup_key=f"conversion:{key}",
        )
        for key in keys
    ]
    OutboxEvent.objects.using(database.alias).bulk_create(rows, batch_size=1_000)
    return {f"conversion:{key}" for key in keys}


def status_counts(database: OutboxDatabase) -> dict[str, int]:
    groups = OutboxEvent.objects.using(database.alias).values("status").annotate(n=Count("id"))
    return {group["status"]: group["n"] for group in groups.order_by()}


def sent_by(flusher: Started) -> int:
    # The summary lines on stdout, one per pass: "2025-03-01 12:00:05 UTC sent 480, retried 0, ..."
    summaries = re.findall(r"^[0-9-]+ [0-9:]+ UTC sent ([0-9]+), retried", flusher.output(), re.M)
    return sum(int(n) for n in summaries)


def test_four_flushers_deliver_every_event_exactly_once(
    shared_outbox: OutboxDatabase,
    receiver: Receiver,
    processes: Processes,
) -> None:
    env = process_env(shared_outbox, receiver)
    loop = ("tracify_flush", "--loop", "--interval", "0.1", "--batch-size", "25", "-v", "2")
    flushers = [processes.manage(f"flusher-{n}", *loop, env=env) for n in range(FLUSHERS)]
    # Every flusher is polling (it printed its first idle pass) before the events arrive.
    wait_until(
        lambda: all(f.output().count(", left 0") for f in flushers),
        60,
        lambda: "\n".join(f"{f.name}:\n{f.output()}" for f in flushers),
    )
    keys = enqueue_conversions(shared_outbox, EVENTS)

    wait_until(
        lambda: status_counts(shared_outbox) == {OutboxStatus.SENT: EVENTS},
        120,
        lambda: f"outbox {status_counts(shared_outbox)}, receiver {receiver.counters()}",
    )
    assert processes.stop(*flushers) == [0] * FLUSHERS  # a clean SIGTERM exit
    delivered = receiver.count_by(dedup_key)
    assert set(delivered) == keys
    assert {key: n for key, n in delivered.items() if n > 1} == {}
    # Each row was settled by exactly one flusher, the one whose claim it carried.
    assert sum(sent_by(f) for f in flushers) == EVENTS
    unsettled = OutboxEvent.objects.using(shared_outbox.alias).exclude(
        claim_token=None, lease_expires_at=None, attempts=1
    )
    assert not unsettled.exists()


def test_a_flusher_killed_mid_batch_loses_nothing(
    shared_outbox: OutboxDatabase,
    receiver: Receiver,
    processes: Processes,
) -> None:
    lease = {"LEASE_SECONDS": 6, "TIMEOUT": 3}  # a request may use the lease but its last 3 s
    env = process_env(shared_outbox, receiver, **lease)
    keys = enqueue_conversions(shared_outbox, 200)
    receiver.script({"kind": "hang", "seconds": 30})  # the first request gets no answer

    doomed = processes.manage("doomed", "tracify_flush", "--batch-size", "50", env=env)
    wait_until(lambda: len(receiver.requests()) == 1, 60, doomed.output)
    assert processes.stop(doomed, signum=signal.SIGKILL) == [-signal.SIGKILL]
    # Killed while its request hung: its batch is stuck in sending, under its lease.
    assert status_counts(shared_outbox) == {OutboxStatus.SENDING: 50, OutboxStatus.PENDING: 150}
    stuck = set(
        OutboxEvent.objects.using(shared_outbox.alias)
        .filter(status=OutboxStatus.SENDING)
        .values_list("id", flat=True)
    )

    survivor = processes.manage(
        "survivor", "tracify_flush", "--loop", "--interval", "0.2", "--batch-size", "50", env=env
    )
    wait_until(
        lambda: status_counts(shared_outbox) == {OutboxStatus.SENT: 200},
        60,
        lambda: f"outbox {status_counts(shared_outbox)}\n{survivor.output()}",
    )
    assert processes.stop(survivor) == [0]
    delivered = receiver.count_by(dedup_key)
    assert set(delivered) == keys
    assert {key: n for key, n in delivered.items() if n > 1} == {}
    # The killed batch was re-sent after its lease, without an attempt burned by the crash.
    resent = OutboxEvent.objects.using(shared_outbox.alias).filter(id__in=stuck)
    assert set(resent.values_list("status", "attempts")) == {(OutboxStatus.SENT, 1)}
    assert not resent.exclude(claim_token=None).exists()


def terminate_other_backends(database: OutboxDatabase) -> int:
    """What a PostgreSQL restart, failover or idle timeout does to a flusher's connection."""
    with connections[database.alias].cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_a_looping_flusher_survives_a_dropped_database_connection(
    postgres_outbox: OutboxDatabase,
    receiver: Receiver,
    processes: Processes,
) -> None:
    env = process_env(postgres_outbox, receiver, BACKOFF_BASE_SECONDS=0)
    flusher = processes.manage(
        "flusher", "tracify_flush", "--loop", "--interval", "0.1", "-v", "2", env=env
    )
    wait_until(lambda: ", left 0" in flusher.output(), 60, flusher.output)
    before = enqueue_conversions(postgres_outbox, 10)
    wait_until(
        lambda: status_counts(postgres_outbox) == {OutboxStatus.SENT: 10},
        60,
        lambda: f"outbox {status_counts(postgres_outbox)}\n{flusher.output()}",
    )
    assert terminate_other_backends(postgres_outbox) >= 1

    # Tracify away too for a while: the connection must come back after failed passes as well.
    receiver.script("reset", "reset")
    rows = OutboxEvent.objects.using(postgres_outbox.alias)
    rows.all().delete()
    after = enqueue_conversions(postgres_outbox, 10, prefix="late")
    wait_until(
        lambda: status_counts(postgres_outbox) == {OutboxStatus.SENT: 10},
        60,
        lambda: f"outbox {status_counts(postgres_outbox)}\n{flusher.output()}",
    )
    assert processes.stop(flusher) == [0]
    assert set(receiver.count_by(dedup_key)) == before | after
    assert rows.filter(attempts__gt=1).exists()  # the answers that failed were retried


def test_an_answer_that_comes_after_the_connection_dropped_is_still_settled(
    postgres_outbox: OutboxDatabase,
    postgres_server: PostgresServer,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
) -> None:
    receiver_settings(DATABASE=postgres_outbox.alias, BATCH_SIZE=10)
    keys = enqueue_conversions(postgres_outbox, 10)

    def drop_the_flushers_connection(line: str) -> None:
        # While the flusher waits for this answer, as a failover or an idle timeout would.
        with psycopg.connect(postgres_server.conninfo, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (postgres_outbox.config["NAME"],),
            )

    receiver.log = drop_the_flushers_connection
    result = flush()
    receiver.log = None
    assert (result.sent, result.requests) == (10, 1)
    assert status_counts(postgres_outbox) == {OutboxStatus.SENT: 10}
    assert set(receiver.count_by(dedup_key)) == keys
