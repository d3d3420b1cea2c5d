"""manage.py tracify_status: the outbox backlog and the last flush; a health check."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count, QuerySet

from django_tracify import capture_problems, outbox
from django_tracify.clock import as_utc, format_utc, utc_now
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
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


def oldest_undelivered_at(rows: QuerySet[OutboxEvent]) -> datetime | None:
    """When the oldest pending or sending event was created, whether it is due or in backoff."""
    # One indexed lookup per status: the oldest id is (nearly always) the oldest event.
    firsts = [
        rows.filter(status=status).order_by("id").values_list("created_at", flat=True).first()
        for status in (OutboxStatus.PENDING, OutboxStatus.SENDING)
    ]
    return min((first for first in firsts if first is not None), default=None)


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

    def handle(self, *args: Any, **options: Any) -> None:
        using = outbox_database()
        now = utc_now()
        rows = OutboxEvent.objects.using(using)
        counts = {
            group["status"]: group["n"]
            for group in rows.order_by().values("status").annotate(n=Count("id"))
        }
        due = rows.filter(outbox.due(now))
        due_count = due.count()
        oldest = rows.filter(status=OutboxStatus.PENDING).order_by("created_at", "id").first()
        undelivered_since = oldest_undelivered_at(rows)
        lag = (now - undelivered_since).total_seconds() if undelivered_since else 0.0
        expired = rows.filter(status=OutboxStatus.SENDING, lease_expires_at__lt=now).count()
        state = FlushState.load(using)

        def count(status: str) -> int:
            return int(counts.get(status, 0))

        lines = [
            f"pending:        {count(OutboxStatus.PENDING):,} ({due_count:,} due now)",
            f"sending:        {count(OutboxStatus.SENDING):,} ({expired:,} with an expired lease)",
            "oldest pending: "
            + (f"#{oldest.pk}, created {when(oldest.created_at, now)}" if oldest else "none"),
            f"lag:            {duration(lag)} (the age of the oldest undelivered event)",
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
        for kind in capture_problems.saved_counts(using):
            self.stdout.write(
                f"{kind.label + ':':<15} {kind.count:,} ({kind.meaning}), "
                f"last: {when(kind.last_at, now)}"
            )
        max_lag: float | None = options["max_lag"]
        if max_lag is not None and lag > max_lag:
            raise CommandError(
                f"lag {duration(lag)} is over --max-lag {max_lag:g}s: "
                "is a flusher running, and can it reach Tracify?",
                returncode=1,
            )
