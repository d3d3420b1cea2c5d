"""The django-celery-beat schedule of the flush task (needs the ``celery`` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import router, transaction

if TYPE_CHECKING:
    from django_celery_beat.models import PeriodicTask

PERIODIC_TASK_NAME = "django-tracify: flush outbox"
FLUSH_TASK_NAME = "django_tracify.tasks.flush_outbox"
DEFAULT_INTERVAL_SECONDS = 5
# A flush queued longer than this is dropped rather than run late, so a stopped worker does not
# come back to a pile of them; generous, because beat's and the worker's clocks may differ.
MIN_EXPIRE_SECONDS = 60


def ensure_periodic_flush(interval_seconds: int = DEFAULT_INTERVAL_SECONDS) -> PeriodicTask:
    """Create or update the one django-celery-beat PeriodicTask that runs the flush task.

    It is named "django-tracify: flush outbox", runs every `interval_seconds` (a whole number
    from 1) on an IntervalSchedule and is enabled. Calling it again updates that same task:
    its interval, and enables it if it was disabled.
    Returns the PeriodicTask.
    """
    if isinstance(interval_seconds, bool) or not isinstance(interval_seconds, int):
        raise TypeError(f"interval_seconds must be a whole number, not {interval_seconds!r}")
    if interval_seconds < 1:
        raise ValueError(f"interval_seconds must be at least 1, not {interval_seconds}")
    _require_beat()
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    period = IntervalSchedule.SECONDS
    with transaction.atomic(using=router.db_for_write(PeriodicTask)):
        # IntervalSchedule has no unique constraint: reuse the first equal one.
        interval = (
            IntervalSchedule.objects.filter(every=interval_seconds, period=period)
            .order_by("id")
            .first()
        ) or IntervalSchedule.objects.create(every=interval_seconds, period=period)
        task, _ = PeriodicTask.objects.update_or_create(
            name=PERIODIC_TASK_NAME,
            defaults={
                "task": FLUSH_TASK_NAME,
                "interval": interval,
                "crontab": None,
                "solar": None,
                "clocked": None,
                "one_off": False,
                "enabled": True,
                "expires": None,
                "expire_seconds": max(interval_seconds, MIN_EXPIRE_SECONDS),
                "description": "Sends the django-tracify outbox to Tracify "
                "(created by django_tracify.delivery.schedule.ensure_periodic_flush).",
            },
        )
    return task


def disable_periodic_flush() -> bool:
    """Disable the flush PeriodicTask, keeping it; False when there is none."""
    _require_beat()
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(name=PERIODIC_TASK_NAME).first()
    if task is None:
        return False
    task.enabled = False
    task.save()  # not update(): save() tells beat that the schedule changed
    return True


def _require_beat() -> None:
    if not apps.is_installed("django_celery_beat"):
        raise ImproperlyConfigured(
            "The flush schedule needs django-celery-beat: pip install 'django-tracify[celery]' "
            "and add 'django_celery_beat' to INSTALLED_APPS."
        )
