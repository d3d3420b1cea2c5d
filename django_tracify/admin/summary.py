"""The outbox summary above the admin list: each number from one indexed, bounded query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet

from django_tracify.admin.paginator import COUNT_CAP, capped_count
from django_tracify.clock import as_utc, utc_now
from django_tracify.conf import without_api_key
from django_tracify.models import FlushOutcome, FlushState, OutboxEvent, OutboxStatus
from django_tracify.outbox.capture_problems import KindCount, saved_counts


@dataclass(frozen=True)
class BoundedCount:
    """A count that stops at COUNT_CAP: '10,000+' rather than a scan of a huge table."""

    value: int
    cap: int

    @property
    def is_exact(self) -> bool:
        return self.value <= self.cap

    def __str__(self) -> str:
        return f"{self.value:,}" if self.is_exact else f"{self.cap:,}+"


@dataclass(frozen=True)
class OutboxSummary:
    pending: BoundedCount
    oldest_pending_at: datetime | None
    sent_last_24h: BoundedCount
    dead: BoundedCount
    invalid: BoundedCount
    last_flush_at: datetime | None
    last_success_at: datetime | None
    last_outcome: str
    last_outcome_label: str
    last_message: str
    capture_counts: tuple[KindCount, ...] = ()

    @property
    def oldest_pending_age(self) -> timedelta | None:
        if self.oldest_pending_at is None:
            return None
        return as_utc(utc_now()) - self.oldest_pending_at

    @property
    def unauthorised(self) -> bool:
        return self.last_outcome == FlushOutcome.UNAUTHORISED


def _aware(moment: datetime | None) -> datetime | None:
    # Aware UTC for the template: its date and timesince filters then show the right time
    # whatever USE_TZ says (naive outbox times are UTC, see clock.py).
    return None if moment is None else as_utc(moment)


def bounded_count(queryset: QuerySet[OutboxEvent]) -> BoundedCount:
    return BoundedCount(capped_count(queryset, COUNT_CAP), COUNT_CAP)


def outbox_summary(events: QuerySet[OutboxEvent]) -> OutboxSummary:
    """Read the summary from ``events`` (the outbox table on its database, unfiltered)."""
    pending = events.filter(status=OutboxStatus.PENDING)
    # Oldest by id: the partial index on pending ids answers it without a sort.
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    since = utc_now() - timedelta(hours=24)
    sent_recently = events.filter(status=OutboxStatus.SENT, sent_at__gte=since)
    # A plain read: FlushState.load() would insert the row, and a GET must not write.
    state = FlushState.objects.using(events.db).filter(id=1).first() or FlushState()
    return OutboxSummary(
        pending=bounded_count(pending),
        oldest_pending_at=_aware(oldest),
        sent_last_24h=bounded_count(sent_recently),
        dead=bounded_count(events.filter(status=OutboxStatus.DEAD)),
        invalid=bounded_count(events.filter(status=OutboxStatus.INVALID)),
        last_flush_at=_aware(state.last_flush_at),
        last_success_at=_aware(state.last_success_at),
        last_outcome=state.last_outcome,
        last_outcome_label=state.get_last_outcome_display() if state.last_outcome else "",
        last_message=without_api_key(state.last_message),
        capture_counts=tuple(saved_counts(events.db)),
    )
