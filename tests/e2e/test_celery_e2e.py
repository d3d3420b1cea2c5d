"""End to end: django-celery-beat's DatabaseScheduler sends django_tracify.tasks.flush_outbox
through a real Redis to a real Celery worker, which delivers the outbox to the local receiver.

The schedule is made with `manage.py tracify_schedule`, as a user would; beat, the worker and
the test share a fresh database (SQLite file or PostgreSQL) through tests/process_settings.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import django_tracify as tracify
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.process_fixtures import OutboxDatabase, Processes, manage, process_env, wait_until
from tracify_receiver import Receiver

pytestmark = [pytest.mark.celery, pytest.mark.slow]

EVENTS = 20  # per wave


@pytest.fixture
def queue(redis_url: str) -> Iterator[str]:
    """A Celery queue of this test's own, so no task left in Redis by another run reaches it."""
    name = f"tracify-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(name, f"_kombu.binding.{name}")
    finally:
        client.close()


def celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "--app", "tests.celery_app", *args]


def test_beat_and_a_worker_deliver_the_outbox(
    outbox_database: OutboxDatabase,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    redis_url: str,
    queue: str,
    processes: Processes,
    shop_request: Callable[..., Any],
    tmp_path: Path,
) -> None:
    env = {
        **process_env(outbox_database, receiver),
        "TRACIFY_TEST_BROKER_URL": redis_url,
        "TRACIFY_TEST_QUEUE": queue,
    }
    scheduled = manage("tracify_schedule", "--interval", "1", env=env)
    assert scheduled == (
        '"django-tracify: flush outbox": django_tracify.tasks.flush_outbox every 1 s, enabled\n'
    )
    worker = processes.start(
        "worker",
        celery(
            "worker",
            *("--pool", "solo", "--queues", queue, "--hostname", f"{queue}@%h"),
            *("--without-heartbeat", "--without-gossip", "--without-mingle"),
            "--loglevel",
            "INFO",
        ),
        env,
    )
    beat = processes.start(
        "beat",
        celery(
            "beat",
            *("--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"),
            *("--max-interval", "1", "--schedule", str(tmp_path / "beat-schedule")),
            "--loglevel",
            "INFO",
        ),
        env,
    )

    rows = OutboxEvent.objects.using(outbox_database.alias)
    receiver_settings(DATABASE=outbox_database.alias)

    def logs() -> str:
        return (
            f"receiver {receiver.counters()}, outbox {list(rows.values_list('status'))}\n"
            f"--- worker\n{worker.output()}\n--- beat\n{beat.output()}"
        )

    urls: set[str] = set()

    def all_received() -> bool:
        return len(receiver.accepted_events()) >= len(urls)

    def all_sent() -> bool:
        return rows.filter(status=OutboxStatus.SENT).count() == len(urls)

    # The shop tracks while beat and the worker run; the second wave needs a later beat tick.
    for wave in range(2):
        tracked = [tracify.track_pageview(shop_request(f"/c/{wave}/{n}")) for n in range(EVENTS)]
        urls |= {event.payload["url"] for event in tracked if event is not None}
        assert len(urls) == EVENTS * (wave + 1)
        wait_until(all_received, 90, logs)
        wait_until(all_sent, 30, logs)
    assert processes.stop(beat, worker) == [0, 0]

    delivered = receiver.count_by(lambda event: event["url"])
    assert set(delivered) == urls
    assert {url: n for url, n in delivered.items() if n > 1} == {}
    assert not rows.exclude(status=OutboxStatus.SENT).exists()
    assert FlushState.load(outbox_database.alias).last_success_at is not None
    assert "django_tracify.tasks.flush_outbox" in beat.output()  # beat sent it ...
    assert "Task django_tracify.tasks.flush_outbox" in worker.output()  # ... the worker ran it
