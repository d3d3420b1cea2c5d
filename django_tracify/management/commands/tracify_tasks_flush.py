"""manage.py tracify_tasks_flush: start the django.tasks flush that re-enqueues itself."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds above 0")
    return seconds


class Command(BaseCommand):
    help = (
        "Enqueue django_tracify.django_tasks.flush_outbox_periodically: a flush pass every "
        "SECONDS, run by your django.tasks worker. Starts no second chain where it can see one "
        "(django-tasks-db), so it is safe to run at every deploy."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=positive_seconds,
            default=None,
            metavar="SECONDS",
            help="Seconds between flush passes (default 5).",
        )
        parser.add_argument(
            "--backend", default=None, help="The TASKS alias to use (default: 'default')."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            from django_tracify.django_tasks import DEFAULT_INTERVAL_SECONDS, start_periodic_flush
        except ImportError as err:
            raise CommandError(str(err)) from err
        every: float = options["every"] or DEFAULT_INTERVAL_SECONDS
        try:
            started = start_periodic_flush(every, backend=options["backend"])
        except Exception as err:  # a bad interval, an unknown backend, or one that cannot defer
            raise CommandError(f"{type(err).__name__}: {err}") from err
        if started is None:
            self.stdout.write("flush_outbox_periodically: already queued, nothing started")
        else:
            self.stdout.write(
                f"flush_outbox_periodically: every {every:g} s on backend "
                f"{started.backend!r}, started (task {started.id})"
            )
