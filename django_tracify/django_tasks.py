"""Flush tasks for Django's task framework: django.tasks (Django 6.0+), or on Django 5.2 the
django-tasks backport, which has the same API. Celery's task is django_tracify.tasks.

- flush_outbox: one delivery pass, on whatever backend TASKS configures.
- flush_outbox_periodically: a pass, then the same task again `interval_seconds` later
  (run_after), so a task worker alone keeps delivering: no beat, no cron.
- flush_soon(): enqueue flush_outbox once the current transaction commits
  (TRACIFY['FLUSH_ON_PURCHASE']).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

if TYPE_CHECKING:
    from django.tasks import TaskContext, TaskResult, task, task_backends
    from django.tasks.backends.immediate import ImmediateBackend
    from django.tasks.base import Task
else:
    try:
        from django.tasks import TaskContext, TaskResult, task, task_backends
        from django.tasks.backends.immediate import ImmediateBackend
        from django.tasks.base import Task
    except ImportError:
        try:
            from django_tasks import TaskContext, TaskResult, task, task_backends
            from django_tasks.backends.immediate import ImmediateBackend
            from django_tasks.base import Task
        except ImportError as err:  # pragma: no cover - exercised in a subprocess
            raise ImportError(
                "django_tracify.django_tasks needs Django 6.0+ (django.tasks), or on Django "
                "5.2 the backport: pip install django-tasks"
            ) from err

from django_tracify.delivery import flushing
from django_tracify.routers import outbox_database

__all__ = [
    "ImmediateBackend",
    "TaskContext",
    "flush_outbox",
    "flush_outbox_periodically",
    "flush_soon",
    "start_periodic_flush",
    "task_backends",
]

logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
PERIODIC_TASK_PATH = "django_tracify.django_tasks.flush_outbox_periodically"
# A chain whose run started longer ago than this is taken for dead (its worker was killed).
STALE_RUN_SECONDS = 3600


@task
def flush_outbox(batch_size: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """Deliver due outbox events to Tracify: one `flushing.flush()` pass.

    Safe to overlap with other flushers; a refused key or an unreachable Tracify is logged
    and recorded (admin, tracify_status), and the events wait in the outbox.
    """
    return flushing.flush(batch_size=batch_size, limit=limit).as_task_result()


@task(takes_context=True)
def flush_outbox_periodically(
    context: TaskContext[..., Any],
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """One flush pass, then this task again (same backend and queue) `interval_seconds` later.

    The next run is enqueued even when this pass fails, so one bad pass does not end the chain.
    Start it with `manage.py tracify_tasks_flush`, which starts no second chain.
    """
    try:
        return flushing.flush(batch_size=batch_size).as_task_result()
    finally:
        after = timezone.now() + timedelta(seconds=interval_seconds)
        context.task_result.task.using(run_after=after).enqueue(
            interval_seconds=interval_seconds, batch_size=batch_size
        )


def start_periodic_flush(
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS, *, backend: str | None = None
) -> TaskResult[..., Any] | None:
    """Enqueue flush_outbox_periodically, unless a chain of it is queued or running already.

    Whether one is can only be seen on django-tasks-db's DatabaseBackend; on other backends
    every call starts a chain. Returns the new task's result, or None when one was there.
    """
    if not interval_seconds > 0:
        raise ValueError(f"interval_seconds must be more than 0, not {interval_seconds!r}")
    periodic: Task[..., Any] = flush_outbox_periodically
    if backend is not None:
        periodic = periodic.using(backend=backend)
    if not periodic.get_backend().supports_defer:
        raise ValueError(
            f"The task backend {periodic.backend!r} cannot run a task later (run_after): "
            "use a backend that can, such as django-tasks-db's DatabaseBackend."
        )
    if _chain_exists(periodic.backend):
        return None
    return periodic.enqueue(interval_seconds=interval_seconds)


def _chain_exists(backend: str) -> bool:
    backend_class = type(task_backends[backend])
    if backend_class.__module__.split(".")[0] != "django_tasks_db":
        return False
    from django_tasks_db.models import DBTaskResult  # type: ignore[import-untyped,unused-ignore]

    chains = DBTaskResult.objects.filter(task_path=PERIODIC_TASK_PATH, backend_name=backend)
    stale = timezone.now() - timedelta(seconds=STALE_RUN_SECONDS)
    return bool(
        chains.filter(status="READY").exists()
        or chains.filter(status="RUNNING", started_at__gte=stale).exists()
    )


def flush_soon() -> None:
    """Enqueue flush_outbox once the outbox database's current transaction commits.

    Never raises: the shop's request goes on whatever the task backend does.
    """
    transaction.on_commit(_enqueue_flush, using=outbox_database(), robust=True)


def _enqueue_flush() -> None:
    if isinstance(flush_outbox.get_backend(), ImmediateBackend):
        # It would run the flush here, in the shop's request: a network call.
        logger.warning(
            "tracify: FLUSH_ON_PURCHASE skipped: the task backend %r would run the flush "
            "inside the request; configure a queue backend in TASKS",
            flush_outbox.backend,
        )
        return
    try:
        flush_outbox.enqueue()
    except Exception:
        logger.exception("tracify: FLUSH_ON_PURCHASE could not enqueue the flush task")
