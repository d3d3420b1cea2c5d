"""The one reader of the outbox's state and the last flush: the admin summary, tracify_status
and the metrics all show what it reads.

Each fact is read on first use, by one query an index answers, and kept; nothing is ever
written (a GET of the admin, a scrape or a health check may run it often).
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any

from django.db.models import QuerySet

from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from django_tracify.outbox import capture_problems
from django_tracify.outbox.states import UNDELIVERED, due


def capped_count(queryset: QuerySet[Any], cap: int) -> int:
    """``SELECT count(*) FROM (SELECT ... LIMIT cap + 1)``: at most cap + 1 rows are read."""
    return queryset.order_by().values("pk")[: cap + 1].count()


class OutboxReport:
    """The outbox on database `using` as of `now`.

    With `cap`, a count stops at cap + 1 (more than `cap`) rather than read a huge table.
    """

    def __init__(self, using: str, now: datetime, *, cap: int | None = None) -> None:
        self.using = using
        self.now = now
        self.cap = cap
        self.rows = OutboxEvent.objects.using(using)
        self._counts: dict[str, int] = {}

    def _count(self, rows: QuerySet[OutboxEvent]) -> int:
        return rows.count() if self.cap is None else capped_count(rows, self.cap)

    def count(self, status: str) -> int:
        """Rows in `status`, by the (status, id) index."""
        if status not in self._counts:
            self._counts[status] = self._count(self.rows.filter(status=status))
        return self._counts[status]

    def sent_since(self, moment: datetime) -> int:
        return self._count(self.rows.filter(status=OutboxStatus.SENT, sent_at__gte=moment))

    @cached_property
    def due(self) -> int:
        return self._count(self.rows.filter(due(self.now)))

    @cached_property
    def expired_leases(self) -> int:
        rows = self.rows.filter(status=OutboxStatus.SENDING, lease_expires_at__lt=self.now)
        return self._count(rows)

    @cached_property
    def oldest_pending(self) -> tuple[int, datetime] | None:
        """(id, created_at) of the pending row that is sent first: the lowest id."""
        return self._first(OutboxStatus.PENDING)

    @cached_property
    def undelivered_since(self) -> datetime | None:
        """When the oldest pending or sending event was created, due or in backoff."""
        firsts = [self.oldest_pending, self._first(OutboxStatus.SENDING)]
        return min((first[1] for first in firsts if first is not None), default=None)

    def _first(self, status: str) -> tuple[int, datetime] | None:
        # By id, which the (status, id) index answers: the oldest id is (nearly always) the
        # oldest event, and the one the claim takes first.
        rows = self.rows.filter(status=status).order_by("id").values_list("id", "created_at")
        return rows.first()

    @cached_property
    def flush_state(self) -> FlushState:
        # A plain read: FlushState.load() would insert the row.
        return FlushState.row(self.using).first() or FlushState()

    @cached_property
    def capture_counts(self) -> list[capture_problems.KindCount]:
        return capture_problems.saved_counts(self.using)

    @property
    def lag_seconds(self) -> float:
        """The age of the oldest undelivered (pending or sending) event; 0 when none."""
        if self.undelivered_since is None:
            return 0.0
        return max((self.now - self.undelivered_since).total_seconds(), 0.0)

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


def read(using: str, now: datetime, *, cap: int | None = None) -> OutboxReport:
    """The report of the outbox on `using`; changes nothing."""
    return OutboxReport(using, now, cap=cap)
