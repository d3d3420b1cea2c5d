"""The outbox summary above the admin list: each number from one indexed, bounded query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django_tracify.admin.paginator import COUNT_CAP
from django_tracify.clock import as_utc, utc_now
from django_tracify.conf import without_api_key
from django_tracify.delivery import status
from django_tracify.models import FlushOutcome, OutboxStatus
from django_tracify.outbox.capture_problems import KindCount


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


def outbox_summary(using: str) -> OutboxSummary:
    """The summary of the outbox on database `using`, from delivery.status's reader."""
    now = utc_now()
    report = status.read(using, now, cap=COUNT_CAP)
    oldest = report.oldest_pending
    state = report.flush_state

    def bounded(count: int) -> BoundedCount:
        return BoundedCount(count, COUNT_CAP)

    return OutboxSummary(
        pending=bounded(report.count(OutboxStatus.PENDING)),
        oldest_pending_at=_aware(oldest[1] if oldest else None),
        sent_last_24h=bounded(report.sent_since(now - timedelta(hours=24))),
        dead=bounded(report.count(OutboxStatus.DEAD)),
        invalid=bounded(report.count(OutboxStatus.INVALID)),
        last_flush_at=_aware(state.last_flush_at),
        last_success_at=_aware(state.last_success_at),
        last_outcome=state.last_outcome,
        last_outcome_label=state.get_last_outcome_display() if state.last_outcome else "",
        last_message=without_api_key(state.last_message),
        capture_counts=tuple(report.capture_counts),
    )
