"""manage.py tracify_schedule: the django-celery-beat PeriodicTask that runs the flush task."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tracify.delivery.schedule import (
    DEFAULT_INTERVAL_SECONDS,
    PERIODIC_TASK_NAME,
    disable_periodic_flush,
    ensure_periodic_flush,
)


def whole_seconds(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds from 1")
    return int(value)


class Command(BaseCommand):
    help = (
        f'Create or update the django-celery-beat periodic task "{PERIODIC_TASK_NAME}" that '
        "runs django_tracify.tasks.flush_outbox, or disable it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group()
        group.add_argument(
            "--interval",
            type=whole_seconds,
            default=None,  # not the default value: argparse only sees a clash with --disable then
            metavar="SECONDS",
            help=f"Run the flush every SECONDS (default {DEFAULT_INTERVAL_SECONDS}).",
        )
        group.add_argument(
            "--disable",
            action="store_true",
            help="Disable the periodic task (it is kept; run again without --disable to enable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["disable"]:
                if disable_periodic_flush():
                    self.stdout.write(f'"{PERIODIC_TASK_NAME}": disabled')
                else:
                    self.stdout.write(f'"{PERIODIC_TASK_NAME}": not scheduled, nothing to disable')
                return
            interval: int = options["interval"] or DEFAULT_INTERVAL_SECONDS
            task = ensure_periodic_flush(interval_seconds=interval)
        except ImproperlyConfigured as err:
            raise CommandError(str(err)) from err
        self.stdout.write(
            f'"{PERIODIC_TASK_NAME}": {task.task} every {task.interval.every} s, enabled'
        )
