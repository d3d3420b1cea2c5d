"""Celery tasks. Needs the ``celery`` extra; nothing else in django_tracify imports this module.

Celery's ``app.autodiscover_tasks()`` finds it through INSTALLED_APPS.
"""

from __future__ import annotations

from typing import Any

try:
    from celery import shared_task
except ImportError as err:  # pragma: no cover - exercised in a subprocess without Celery
    raise ImportError(
        "django_tracify.tasks needs Celery: pip install 'django-tracify[celery]'"
    ) from err

from django_tracify.delivery import flushing
from django_tracify.delivery.schedule import FLUSH_TASK_NAME


@shared_task(name=FLUSH_TASK_NAME, ignore_result=True)
def flush_outbox(batch_size: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """Deliver due outbox events to Tracify: one `flushing.flush()` pass.

    Safe to overlap (a slow run and the next scheduled one, or many workers): every run claims
    its own rows. A refused API key or an unreachable Tracify is logged and recorded in the
    flush state (admin, `tracify_status`); the events wait in the outbox.
    """
    return flushing.flush(batch_size=batch_size, limit=limit).as_task_result()
