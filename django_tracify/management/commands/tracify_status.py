"""manage.py tracify_status: the outbox backlog and the last flush; a health check."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_tracify.clock import as_utc, format_utc, utc_now
from django_tracify.delivery import status
from django_tracify.delivery.status import OutboxReport
from django_tracify.models import OutboxStatus
from django_tracify.routers import outbox_database


def duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"
    return f"{days}d {text}" if days else text


def when(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    return f"{format_utc(moment)} ({duration((as_utc(now) - as_utc(moment)).total_seconds())} ago)"


class Command(BaseCommand):
    help = (
        "Show the outbox backlog, the oldest pending event, dead events and the last flush. "
        "With --max-lag, exit non-zero when an undelivered event is older (a health check)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-lag",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Exit with status 1 if the oldest undelivered event is older than this.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the same facts as one JSON object (keys in the README), for scripts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = utc_now()
        report = status.read(outbox_database(), now)
        max_lag: float | None = options["max_lag"]
        over = max_lag is not None and report.lag_seconds > max_lag
        if options["json"]:
            facts = {**report.as_json(), "max_lag": max_lag, "over_max_lag": over}
            self.stdout.write(json.dumps(facts))
        else:
            self._write_text(report)
        if over:
            raise CommandError(
                f"lag {duration(report.lag_seconds)} is over --max-lag {max_lag:g}s: "
                "is a flusher running, and can it reach Tracify?",
                returncode=1,
            )

    def _write_text(self, report: OutboxReport) -> None:
        now, state, count = report.now, report.flush_state, report.count
        oldest = report.oldest_pending
        lines = [
            f"pending:        {count(OutboxStatus.PENDING):,} ({report.due:,} due now)",
            f"sending:        {count(OutboxStatus.SENDING):,} "
            f"({report.expired_leases:,} with an expired lease)",
            "oldest pending: "
            + (f"#{oldest[0]}, created {when(oldest[1], now)}" if oldest else "none"),
            f"lag:            {duration(report.lag_seconds)} "
            "(the age of the oldest undelivered event)",
            f"dead:           {count(OutboxStatus.DEAD):,}",
            f"discarded:      {count(OutboxStatus.DISCARDED):,}",
            f"invalid:        {count(OutboxStatus.INVALID):,}",
            f"sent (kept):    {count(OutboxStatus.SENT):,}",
            f"last flush:     {when(state.last_flush_at, now)}",
            f"last outcome:   {state.last_outcome or 'none'}"
            + (f": {state.last_message}" if state.last_message else ""),
            f"last success:   {when(state.last_success_at, now)}",
        ]
        for line in lines:
            self.stdout.write(line)
        for kind in report.capture_counts:
            self.stdout.write(
                f"{kind.label + ':':<15} {kind.count:,} ({kind.meaning}), "
                f"last: {when(kind.last_at, now)}"
            )
