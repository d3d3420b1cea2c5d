"""The Celery flush task and its django-celery-beat schedule, in-process (the real worker and
beat run in test_celery_e2e.py)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from django_tracify import outbox
from django_tracify.delivery.schedule import (
    PERIODIC_TASK_NAME,
    disable_periodic_flush,
    ensure_periodic_flush,
)
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from django_tracify.tasks import flush_outbox
from tests.factories import OutboxRow
from tests.services import REPO_ROOT
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db


def statuses() -> list[str]:
    return list(OutboxEvent.objects.order_by("id").values_list("status", flat=True))


# --- the task -------------------------------------------------------------------------------


def test_the_task_delivers_due_events(receiver: Receiver) -> None:
    events = OutboxRow.create_batch(5)
    outcome = flush_outbox.apply(kwargs={"batch_size": 2}).get()
    assert outcome == {"sent": 5, "retried": 0, "dead": 0, "left": 0, "outcome": "ok"}
    assert [event["url"] for event in receiver.accepted_events()] == [
        event.payload["url"] for event in events
    ]
    assert [len(request.events or []) for request in receiver.requests()] == [2, 2, 1]
    assert statuses() == [OutboxStatus.SENT] * 5


def test_the_task_is_registered_under_a_stable_name_and_stores_no_result() -> None:
    assert flush_outbox.name == "django_tracify.tasks.flush_outbox"
    assert flush_outbox.ignore_result is True


def test_overlapping_runs_leave_each_other_s_rows_alone(receiver: Receiver) -> None:
    OutboxRow.create_batch(6)
    # Another run (a slow one, another worker) is in the middle of sending the first three.
    other = outbox.claim_batch(3, now=timezone.now(), lease_seconds=300)
    assert other is not None
    outcome = flush_outbox.apply().get()
    assert outcome["sent"] == 3
    assert len(receiver.accepted_events()) == 3
    assert statuses() == [OutboxStatus.SENDING] * 3 + [OutboxStatus.SENT] * 3
    assert set(
        OutboxEvent.objects.filter(status=OutboxStatus.SENDING).values_list(
            "claim_token", flat=True
        )
    ) == {other.token}


def test_a_refused_key_keeps_the_events_and_is_recorded_not_raised(receiver: Receiver) -> None:
    OutboxRow.create_batch(2)
    receiver.script("http_401")
    outcome = flush_outbox.apply().get()
    assert (outcome["sent"], outcome["outcome"]) == (0, FlushState.UNAUTHORISED)
    assert statuses() == [OutboxStatus.PENDING] * 2
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {0}
    assert FlushState.load().last_outcome == FlushState.UNAUTHORISED


def test_the_core_never_imports_celery_and_the_task_module_says_what_is_missing() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["celery"] = None  # as if Celery were not installed
        import django
        from django.conf import settings
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                            "django.contrib.admin", "django.contrib.sessions",
                            "django.contrib.messages", "django_tracify"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        )
        django.setup()
        import django_tracify.admin.outbox, django_tracify.delivery.flushing
        import django_tracify.delivery.schedule
        import django_tracify.management.commands.tracify_flush
        import django_tracify.management.commands.tracify_schedule
        try:
            import django_tracify.tasks
        except ImportError as err:
            print(err)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "django_tracify.tasks needs Celery: pip install 'django-tracify[celery]'"
    )


# --- the schedule ---------------------------------------------------------------------------


def test_ensure_periodic_flush_creates_the_task_beat_runs() -> None:
    task = ensure_periodic_flush(interval_seconds=5)
    assert (task.name, task.task, task.enabled) == (PERIODIC_TASK_NAME, flush_outbox.name, True)
    # What django-celery-beat's DatabaseScheduler makes of it:
    entry = ModelEntry(PeriodicTask.objects.get(name=PERIODIC_TASK_NAME))
    assert entry.task == flush_outbox.name
    assert entry.schedule.run_every == timedelta(seconds=5)
    assert (entry.args, entry.kwargs) == ([], {})
    assert entry.options["expires"] == 60  # a pile of late flushes is dropped, not run
    assert list(DatabaseScheduler.Model.objects.enabled()) == [task]


def test_ensure_periodic_flush_updates_the_same_task() -> None:
    first = ensure_periodic_flush(interval_seconds=5)
    disable_periodic_flush()
    second = ensure_periodic_flush(interval_seconds=120)
    assert second.pk == first.pk
    assert PeriodicTask.objects.filter(task=flush_outbox.name).count() == 1
    stored = PeriodicTask.objects.get()
    assert (stored.interval.every, stored.interval.period) == (120, IntervalSchedule.SECONDS)
    assert stored.enabled is True
    assert stored.expire_seconds == 120
    ensure_periodic_flush(interval_seconds=5)
    ensure_periodic_flush(interval_seconds=5)
    assert IntervalSchedule.objects.filter(every=5).count() == 1  # reused, not piled up


def test_disable_keeps_the_task_but_beat_skips_it() -> None:
    assert disable_periodic_flush() is False
    ensure_periodic_flush(interval_seconds=5)
    assert disable_periodic_flush() is True
    assert PeriodicTask.objects.get(name=PERIODIC_TASK_NAME).enabled is False
    assert not PeriodicTask.objects.enabled().exists()


@pytest.mark.parametrize("interval", [0, -5])
def test_the_interval_must_be_a_positive_whole_number(interval: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ensure_periodic_flush(interval_seconds=interval)
    with pytest.raises(TypeError, match="whole number"):
        ensure_periodic_flush(interval_seconds=2.5)  # type: ignore[arg-type]
    assert not PeriodicTask.objects.exists()


def run_schedule(*args: str) -> str:
    out = io.StringIO()
    call_command("tracify_schedule", *args, stdout=out)
    return out.getvalue()


def test_the_schedule_command() -> None:
    assert run_schedule() == (
        '"django-tracify: flush outbox": django_tracify.tasks.flush_outbox every 5 s, enabled\n'
    )
    assert "every 2 s, enabled" in run_schedule("--interval", "2")
    assert PeriodicTask.objects.get().interval.every == 2
    assert run_schedule("--disable") == '"django-tracify: flush outbox": disabled\n'
    assert PeriodicTask.objects.get().enabled is False


def test_the_schedule_command_disables_nothing_when_nothing_is_scheduled() -> None:
    assert "not scheduled, nothing to disable" in run_schedule("--disable")
    assert not PeriodicTask.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--interval", "0"), "'0' is not a whole number of seconds from 1"),
        (("--interval", "1.5"), "'1.5' is not a whole number of seconds from 1"),
        (("--interval", "5", "--disable"), "not allowed with argument"),
    ],
)
def test_the_schedule_command_refuses_bad_arguments(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run_schedule(*args)
    assert not PeriodicTask.objects.exists()


def test_the_schedule_command_names_the_missing_app() -> None:
    without_beat = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django_tracify",
    ]
    with (
        override_settings(INSTALLED_APPS=without_beat),
        pytest.raises(CommandError, match="add 'django_celery_beat' to INSTALLED_APPS"),
    ):
        run_schedule("--interval", "5")
