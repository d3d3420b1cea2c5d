"""django_tracify.django_tasks in-process, on Django's dummy and immediate task backends (the
real database-backed worker runs in test_django_tasks_e2e.py).

On Django 5.2 these run on the django-tasks backport (same API); without it they skip.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import django
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

import django_tracify as tracify
from django_tracify.checks import check_settings
from django_tracify.models import OutboxEvent, OutboxStatus
from tracify_receiver import Receiver

# Django 5.2 without the django-tasks backport: the module raises ImportError, the tests skip.
tasks = pytest.importorskip(
    "django_tracify.django_tasks", reason="needs django.tasks", exc_type=ImportError
)

pytestmark = pytest.mark.django_db

TASKS_PACKAGE = "django.tasks" if django.VERSION >= (6,) else "django_tasks"  # or the backport
DUMMY = f"{TASKS_PACKAGE}.backends.dummy.DummyBackend"
IMMEDIATE = f"{TASKS_PACKAGE}.backends.immediate.ImmediateBackend"
ORDER = {"number": "1001", "total": "25.00", "currency": "EUR"}


@pytest.fixture
def dummy_backend() -> Iterator[Any]:
    """TASKS' default backend is Django's DummyBackend: it keeps what is enqueued, runs nothing."""
    with override_settings(TASKS={"default": {"BACKEND": DUMMY}}):
        yield tasks.task_backends["default"]


def enqueued(backend: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(result.task.name, result.kwargs) for result in backend.results]


# --- flush_outbox ---------------------------------------------------------------------------


def test_flush_outbox_delivers_due_events(
    receiver: Receiver, shop_request: Callable[..., Any]
) -> None:
    for n in range(3):
        tracify.track_pageview(shop_request(f"/p/{n}"))
    assert tasks.flush_outbox.call(batch_size=2) == {
        "sent": 3,
        "retried": 0,
        "dead": 0,
        "left": 0,
        "outcome": "ok",
    }
    assert len(receiver.accepted_events()) == 3
    assert not OutboxEvent.objects.exclude(status=OutboxStatus.SENT).exists()


# --- flush_outbox_periodically --------------------------------------------------------------


def test_a_periodic_run_flushes_then_enqueues_the_next_run(
    dummy_backend: Any, receiver: Receiver, shop_request: Callable[..., Any]
) -> None:
    tracify.track_pageview(shop_request("/p"))
    first = tasks.flush_outbox_periodically.enqueue(interval_seconds=30, batch_size=10)
    before = timezone.now()
    outcome = tasks.flush_outbox_periodically.call(
        tasks.TaskContext(task_result=first), interval_seconds=30, batch_size=10
    )
    assert outcome["sent"] == 1
    assert len(receiver.accepted_events()) == 1
    assert enqueued(dummy_backend) == [
        ("flush_outbox_periodically", {"interval_seconds": 30, "batch_size": 10}),
        ("flush_outbox_periodically", {"interval_seconds": 30, "batch_size": 10}),
    ]
    run_after = dummy_backend.results[1].task.run_after
    assert before + timedelta(seconds=30) <= run_after <= timezone.now() + timedelta(seconds=30)


def test_a_failed_pass_still_enqueues_the_next_run(dummy_backend: Any) -> None:
    first = tasks.flush_outbox_periodically.enqueue()
    with (
        mock.patch.object(tasks.flushing, "flush", side_effect=RuntimeError("database gone")),
        pytest.raises(RuntimeError, match="database gone"),
    ):
        tasks.flush_outbox_periodically.call(tasks.TaskContext(task_result=first))
    assert [name for name, _ in enqueued(dummy_backend)] == ["flush_outbox_periodically"] * 2


def test_start_on_a_backend_without_run_after_is_refused() -> None:
    with (
        override_settings(TASKS={"default": {"BACKEND": IMMEDIATE}}),
        pytest.raises(ValueError, match=r"cannot run a task later \(run_after\)"),
    ):
        tasks.start_periodic_flush()


def test_start_needs_a_positive_interval(dummy_backend: Any) -> None:
    with pytest.raises(ValueError, match="more than 0"):
        tasks.start_periodic_flush(0)
    assert enqueued(dummy_backend) == []


def test_the_command_starts_a_chain(dummy_backend: Any, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("tracify_tasks_flush", "--every", "2.5")
    assert capsys.readouterr().out.startswith(
        "flush_outbox_periodically: every 2.5 s on backend 'default', started (task "
    )
    assert enqueued(dummy_backend) == [
        ("flush_outbox_periodically", {"interval_seconds": 2.5}),
    ]


@pytest.mark.parametrize("every", ["0", "-1", "soon"])
def test_the_command_refuses_a_bad_interval(every: str) -> None:
    with pytest.raises(CommandError, match="not a number of seconds above 0"):
        call_command("tracify_tasks_flush", "--every", every)


def test_the_command_refuses_a_backend_that_cannot_defer() -> None:
    with (
        override_settings(TASKS={"default": {"BACKEND": IMMEDIATE}}),
        pytest.raises(CommandError, match="cannot run a task later"),
    ):
        call_command("tracify_tasks_flush")


# --- FLUSH_ON_PURCHASE ----------------------------------------------------------------------


@pytest.fixture
def checkout(shop_request: Callable[..., Any]) -> Callable[[], OutboxEvent | None]:
    """Tracks the shop's order 1001 at its checkout."""
    return lambda: tracify.track_purchase(ORDER, request=shop_request("/checkout/"))


@pytest.fixture
def flush_on_purchase(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(FLUSH_ON_PURCHASE=True)


def test_a_committed_purchase_enqueues_one_flush(
    dummy_backend: Any,
    flush_on_purchase: None,
    checkout: Callable[[], OutboxEvent | None],
    shop_request: Callable[..., Any],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        tracify.track_pageview(shop_request("/checkout/"))
        checkout()
        assert enqueued(dummy_backend) == []  # not before the order is committed
    assert enqueued(dummy_backend) == [("flush_outbox", {})]


def test_a_repeated_purchase_enqueues_no_second_flush(
    dummy_backend: Any,
    flush_on_purchase: None,
    checkout: Callable[[], OutboxEvent | None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        checkout()
        checkout()
    assert enqueued(dummy_backend) == [("flush_outbox", {})]


def test_a_rolled_back_purchase_enqueues_nothing(
    dummy_backend: Any,
    flush_on_purchase: None,
    checkout: Callable[[], OutboxEvent | None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                checkout()
                raise ValueError("payment declined")
        except ValueError:
            pass
    assert callbacks == []
    assert enqueued(dummy_backend) == []


def test_off_by_default(
    dummy_backend: Any,
    checkout: Callable[[], OutboxEvent | None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        checkout()
    assert callbacks == []
    assert enqueued(dummy_backend) == []


def test_the_immediate_backend_never_flushes_in_the_request(
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    checkout: Callable[[], OutboxEvent | None],
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver_settings(FLUSH_ON_PURCHASE=True)
    with (
        override_settings(TASKS={"default": {"BACKEND": IMMEDIATE}}),
        django_capture_on_commit_callbacks(execute=True),
        caplog.at_level(logging.WARNING, "django_tracify"),
    ):
        checkout()
    assert receiver.accepted_events() == []
    assert OutboxEvent.objects.get().status == OutboxStatus.PENDING
    assert "FLUSH_ON_PURCHASE skipped" in caplog.text


def test_a_failing_task_backend_never_reaches_the_shop(
    dummy_backend: Any,
    flush_on_purchase: None,
    checkout: Callable[[], OutboxEvent | None],
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        mock.patch.object(type(dummy_backend), "enqueue", side_effect=ConnectionError("queue")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        row = checkout()
    assert row is not None and row.status == OutboxStatus.PENDING
    assert "could not enqueue the flush task" in caplog.text


def test_check_e009_when_the_backend_would_flush_in_the_request(flush_on_purchase: None) -> None:
    with override_settings(TASKS={"default": {"BACKEND": IMMEDIATE}}):
        assert [message.id for message in check_settings()] == ["tracify.E009"]
    with override_settings(TASKS={"default": {"BACKEND": DUMMY}}):
        assert check_settings() == []


def test_without_the_task_framework_the_purchase_is_still_stored(
    flush_on_purchase: None,
    checkout: Callable[[], OutboxEvent | None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As on Django 5.2 without the django-tasks backport: the module cannot be imported.
    with mock.patch.dict(sys.modules, {"django_tracify.django_tasks": None}):
        row = checkout()
        assert [message.id for message in check_settings()] == ["tracify.E009"]
    assert row is not None and row.status == OutboxStatus.PENDING
    assert "FLUSH_ON_PURCHASE: the flush task was not enqueued" in caplog.text
