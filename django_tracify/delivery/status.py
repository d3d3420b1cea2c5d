"""The facts about the outbox and the last flush that tracify_status and the metrics show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from django_tracify.outbox import capture_problems
from django_tracify.outbox.states import due

# Sent rows are kept for RETENTION_DAYS and can be most of the table: counted on request only.
UNDELIVERED = (
    OutboxStatus.PENDING,
    OutboxStatus.SENDING,
    OutboxStatus.DEAD,
    OutboxStatus.DISCARDED,
    OutboxStatus.INVALID,
)


@dataclass(frozen=True)
class OutboxReport:
    now: datetime
    counts: dict[str, int]  # by status; "sent" only when asked for
    due: int
    expired_leases: int
    oldest_pending: tuple[int, datetime] | None  # (id, created_at)
    undelivered_since: datetime | None
    flush_state: FlushState
    capture_counts: list[capture_problems.KindCount]

    @property
    def lag_seconds(self) -> float:
        """The age of the oldest undelivered (pending or sending) event; 0 when none."""
        if self.undelivered_since is None:
            return 0.0
        return max((self.now - self.undelivered_since).total_seconds(), 0.0)

    def count(self, status: str) -> int:
        return self.counts.get(status, 0)

    def as_json(self) -> dict[str, Any]:
        """The report as the documented keys of `tracify_status --json`."""
        state = self.flush_state
        oldest = self.oldest_pending
        return {
            "now": _iso(self.now),
            **{status: self.count(status) for status in (*UNDELIVERED, OutboxStatus.SENT)},
            "due": self.due,
            "expired_leases": self.expired_leases,
            "oldest_pending": {"id": oldest[0], "created_at": _iso(oldest[1])} if oldest else None,
            "undelivered_since": _iso(self.undelivered_since),
            "lag_seconds": round(self.lag_seconds, 3),
            "last_flush_at": _iso(state.last_flush_at),
            "last_outcome": state.last_outcome or None,
            "last_message": state.last_message,
            "last_success_at": _iso(state.last_success_at),
            "capture_problems": {
                kind.kind: {"count": kind.count, "last_at": _iso(kind.last_at)}
                for kind in self.capture_counts
            },
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def oldest_undelivered_at(rows: QuerySet[OutboxEvent]) -> datetime | None:
    """When the oldest pending or sending event was created, whether it is due or in backoff."""
    # One indexed lookup per status: the oldest id is (nearly always) the oldest event.
    firsts = [
        rows.filter(status=status).order_by("id").values_list("created_at", flat=True).first()
        for status in (OutboxStatus.PENDING, OutboxStatus.SENDING)
    ]
    return min((first for first in firsts if first is not None), default=None)


def read(using: str, now: datetime, *, count_sent: bool = True) -> OutboxReport:
    """Read the report; changes nothing (a scrape or a health check may run it often)."""
    rows = OutboxEvent.objects.using(using)
    statuses = (*UNDELIVERED, OutboxStatus.SENT) if count_sent else UNDELIVERED
    # One count per status, each served by the (status, id) index.
    counts = {str(status): rows.filter(status=status).count() for status in statuses}
    oldest = (
        rows.filter(status=OutboxStatus.PENDING)
        .order_by("created_at", "id")
        .values_list("id", "created_at")
        .first()
    )
    return OutboxReport(
        now=now,
        counts=counts,
        due=rows.filter(due(now)).count(),
        expired_leases=rows.filter(status=OutboxStatus.SENDING, lease_expires_at__lt=now).count(),
        oldest_pending=oldest,
        undelivered_since=oldest_undelivered_at(rows),
        flush_state=FlushState.objects.using(using).filter(id=1).first() or FlushState(),
        capture_counts=capture_problems.saved_counts(using),
    )
