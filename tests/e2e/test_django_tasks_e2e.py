"""End to end without Celery: django-tasks-db's worker (`manage.py db_worker`) runs the tasks of
django_tracify.django_tasks and delivers the outbox to the local receiver.

The worker, the management commands and the test share a fresh database (SQLite file or
PostgreSQL) through tests/process_settings.py, which sets TASKS to django-tasks-db's backend.
On Django 5.2 that is the django-tasks backport, the same API as Django 6's django.tasks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import django
import pytest
from django.db import connections

import django_tracify as tracify
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.conftest import BROWSER_UA
from tests.process_fixtures import OutboxDatabase, Processes, manage, process_env, wait_until
from tracify_receiver import Receiver

TASK_FRAMEWORK = django.VERSION >= (6,) or importlib.util.find_spec("django_tasks") is not None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not TASK_FRAMEWORK or importlib.util.find_spec("django_tasks_db") is None,
        reason="needs django-tasks-db, and on Django 5.2 django-tasks (the test extra)",
    ),
]

EVENTS = 15  # per wave
PERIODIC = "django_tracify.django_tasks.flush_outbox_periodically"
TASK_TABLE = "django_tasks_database_dbtaskresult"


def task_rows(alias: str) -> list[tuple[str, str]]:
    """(task path, status) of every task in the queue, oldest first."""
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT task_path, status FROM {TASK_TABLE} ORDER BY enqueued_at")
        return [(path, status) for path, status in cursor.fetchall()]


def start_worker(processes: Processes, env: dict[str, str]) -> Any:
    # --no-reload: as in production (DEBUG off); the reloader's parent exits on SIGTERM
    # without waiting for the worker's run in flight.
    return processes.manage(
        "worker",
        *("db_worker", "--no-reload", "--interval", "0.1", "--no-startup-delay", "-v", "2"),
        env=env,
    )


def test_a_task_worker_alone_keeps_delivering(
    outbox_database: OutboxDatabase,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    processes: Processes,
    shop_request: Callable[..., Any],
) -> None:
    env = process_env(outbox_database, receiver)
    first = manage("tracify_tasks_flush", "--every", "0.5", env=env)
    assert first.startswith("flush_outbox_periodically: every 0.5 s on backend 'default', started")
    # Run again (a deploy step): the chain that is queued is kept, no second one starts.
    again = manage("tracify_tasks_flush", "--every", "0.5", env=env)
    assert again == "flush_outbox_periodically: already queued, nothing started\n"
    assert task_rows(outbox_database.alias) == [(PERIODIC, "READY")]

    worker = start_worker(processes, env)
    rows = OutboxEvent.objects.using(outbox_database.alias)
    receiver_settings(DATABASE=outbox_database.alias)

    def logs() -> str:
        return f"receiver {receiver.counters()}\n--- worker\n{worker.output()}"

    urls: set[str] = set()

    def all_received() -> bool:
        return len(receiver.accepted_events()) >= len(urls)

    def all_sent() -> bool:
        return rows.filter(status=OutboxStatus.SENT).count() == len(urls)

    def runs_finished() -> int:
        return task_rows(outbox_database.alias).count((PERIODIC, "SUCCESSFUL"))

    # The second wave is tracked once the run that sent the first has finished: only a later
    # run of the chain can send it.
    for wave in range(2):
        tracked = [tracify.track_pageview(shop_request(f"/t/{wave}/{n}")) for n in range(EVENTS)]
        urls |= {event.payload["url"] for event in tracked if event is not None}
        assert len(urls) == EVENTS * (wave + 1)
        wait_until(all_received, 90, logs)
        wait_until(all_sent, 30, logs)
        if wave == 0:
            wait_until(lambda: runs_finished() >= 1, 30, logs)
    assert processes.stop(worker) == [0]

    delivered = receiver.count_by(lambda event: event["url"])
    assert set(delivered) == urls
    assert {url: n for url, n in delivered.items() if n > 1} == {}
    chain = task_rows(outbox_database.alias)
    assert chain.count((PERIODIC, "SUCCESSFUL")) >= 2
    # Stopped between runs, the chain waits in the queue for the next worker.
    assert [row for row in chain if row[1] != "SUCCESSFUL"] == [(PERIODIC, "READY")]


PURCHASE = f"""
from django.db import transaction
from django.test import RequestFactory
import django_tracify as tracify

request = RequestFactory().get(
    "/checkout/", secure=True, HTTP_HOST="shop.example.com",
    HTTP_USER_AGENT={BROWSER_UA!r}, REMOTE_ADDR="203.0.113.7",
)
with transaction.atomic():
    tracify.track_purchase(
        {{"number": "T-1001", "total": "25.00", "currency": "EUR"}}, request=request
    )
"""


def test_flush_on_purchase_delivers_the_purchase_without_a_schedule(
    outbox_database: OutboxDatabase, receiver: Receiver, processes: Processes
) -> None:
    env = process_env(outbox_database, receiver, FLUSH_ON_PURCHASE=True)
    worker = start_worker(processes, env)
    manage("shell", "--no-imports", "-c", PURCHASE, env=env)

    def logs() -> str:
        return f"receiver {receiver.counters()}\n--- worker\n{worker.output()}"

    wait_until(lambda: len(receiver.accepted_events()) == 1, 60, logs)
    wait_until(
        lambda: (
            task_rows(outbox_database.alias)
            == [("django_tracify.django_tasks.flush_outbox", "SUCCESSFUL")]
        ),
        30,
        logs,
    )
    assert processes.stop(worker) == [0]
    (purchase,) = receiver.accepted_events()
    assert purchase["type"] == "purchase"
    assert purchase["data"]["order_id"] == "T-1001"
    assert purchase["data"]["amount"] == "25.00"
