"""Outbox rows changing state: claim, settle, requeue, retry, discard and retention."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import transaction
from django.db.models import F, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast, Coalesce

from django_tracify.clock import utc_now
from django_tracify.errors import MAX_STORED_ERROR_LENGTH
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database

# The rows each operation applies to (the admin's actions name them in their messages).
RETRYABLE = (OutboxStatus.DEAD, OutboxStatus.DISCARDED, OutboxStatus.PENDING)
DISCARDABLE = (OutboxStatus.PENDING, OutboxStatus.DEAD)
# Kept for review for DEAD_RETENTION_DAYS, then deleted.
GIVEN_UP = (OutboxStatus.DEAD, OutboxStatus.DISCARDED, OutboxStatus.INVALID)
# Every status but sent: sent rows are kept for RETENTION_DAYS and can be most of the table,
# so the metrics do not count them.
UNDELIVERED = (OutboxStatus.PENDING, OutboxStatus.SENDING, *GIVEN_UP)


def retry_now(queryset: QuerySet[OutboxEvent]) -> int:
    """Make dead, discarded or pending rows due now with a fresh attempt budget."""
    return queryset.filter(status__in=RETRYABLE).update(
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=utc_now(),
        claim_token=None,
        lease_expires_at=None,
        given_up_at=None,
    )


def discard(queryset: QuerySet[OutboxEvent]) -> int:
    """Give up on rows that are not delivered; they are kept for review until retention."""
    return queryset.filter(status__in=DISCARDABLE).update(
        status=OutboxStatus.DISCARDED,
        claim_token=None,
        lease_expires_at=None,
        # Retention counts from when they were given up on; a dead row keeps its date.
        given_up_at=Coalesce("given_up_at", Value(utc_now())),
    )


class ClaimedRow(NamedTuple):
    id: int
    attempts: int
    payload_json: str
    event_type: str = ""


@dataclass(frozen=True)
class Claim:
    """Rows this flusher owns until `lease_expires_at`; settling checks `token`."""

    token: uuid.UUID
    rows: list[ClaimedRow]
    lease_expires_at: datetime


def _rows(using: str | None) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.using(using or outbox_database())


def due(now: datetime) -> Q:
    return Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now)


def _sendable(rows: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent, tuple[int, int, str, str]]:
    # The payload as the database's JSON text: sent as it is, never parsed and dumped again.
    return rows.annotate(payload_json=Cast("payload", TextField())).values_list(
        "id", "attempts", "payload_json", "event_type"
    )


def requeue_expired(*, now: datetime, using: str | None = None) -> int:
    """Make rows whose lease ran out (their flusher died) pending again; attempts unchanged."""
    return (
        _rows(using)
        .filter(status=OutboxStatus.SENDING, lease_expires_at__lt=now)
        .update(status=OutboxStatus.PENDING, claim_token=None, lease_expires_at=None)
    )


def _claimed(token: uuid.UUID, ids: Iterable[int], using: str | None) -> QuerySet[OutboxEvent]:
    # A flusher that outlived its lease finds its token replaced and changes nothing.
    return _rows(using).filter(claim_token=token, status=OutboxStatus.SENDING, id__in=list(ids))


_UNCLAIMED: dict[str, Any] = {"claim_token": None, "lease_expires_at": None}


def mark_sent(
    token: uuid.UUID, ids: Iterable[int], *, now: datetime, using: str | None = None
) -> int:
    return _claimed(token, ids, using).update(
        status=OutboxStatus.SENT, sent_at=now, attempts=F("attempts") + 1, **_UNCLAIMED
    )


def mark_dead(
    token: uuid.UUID,
    ids: Iterable[int],
    *,
    error: str,
    http_status: int | None,
    now: datetime | None = None,
    using: str | None = None,
) -> int:
    return _claimed(token, ids, using).update(
        status=OutboxStatus.DEAD,
        given_up_at=now or utc_now(),
        attempts=F("attempts") + 1,
        last_error=error[:MAX_STORED_ERROR_LENGTH],
        last_http_status=http_status,
        **_UNCLAIMED,
    )


def mark_retry(
    token: uuid.UUID,
    ids: Iterable[int],
    *,
    next_attempt_at: datetime,
    error: str,
    http_status: int | None,
    now: datetime,
    max_attempts: int | None,
    max_age_seconds: float,
    using: str | None = None,
) -> tuple[int, int]:
    """Back to pending until `next_attempt_at`, or dead once out of attempts or too old.

    `max_attempts` None: no limit on attempts, only on age.

    Returns (retried, dead).
    """
    ids = list(ids)
    failed = {
        "attempts": F("attempts") + 1,
        "last_error": error[:MAX_STORED_ERROR_LENGTH],
        "last_http_status": http_status,
        **_UNCLAIMED,
    }
    exhausted = Q(created_at__lt=now - timedelta(seconds=max_age_seconds))
    if max_attempts is not None:
        exhausted |= Q(attempts__gte=max_attempts - 1)
    using = using or outbox_database()
    with transaction.atomic(using=using):
        dead = (
            _claimed(token, ids, using)
            .filter(exhausted)
            .update(status=OutboxStatus.DEAD, given_up_at=now, **failed)
        )
        retried = _claimed(token, ids, using).update(
            status=OutboxStatus.PENDING, next_attempt_at=next_attempt_at, **failed
        )
    return retried, dead


def release(
    token: uuid.UUID,
    ids: Iterable[int] | None = None,
    *,
    error: str | None = None,
    http_status: int | None = None,
    using: str | None = None,
) -> int:
    """Give claimed rows back as they were: pending, same attempts and due time.

    With `error`, the rows also show why (e.g. the API key was refused).
    """
    rows = _rows(using).filter(claim_token=token, status=OutboxStatus.SENDING)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    values: dict[str, Any] = {"status": OutboxStatus.PENDING, **_UNCLAIMED}
    if error is not None:
        values.update(last_error=error[:MAX_STORED_ERROR_LENGTH], last_http_status=http_status)
    return rows.update(**values)


def count_due(*, now: datetime, using: str | None = None) -> int:
    return _rows(using).filter(due(now)).count()


def waiting_for_retry(using: str | None = None) -> QuerySet[OutboxEvent]:
    """Pending rows that already failed at least once (index tracify_retrying)."""
    return _rows(using).filter(status=OutboxStatus.PENDING, attempts__gt=0)


def iter_due(*, now: datetime, limit: int | None, using: str | None = None) -> Iterator[ClaimedRow]:
    """Due rows oldest first, read in chunks, changing nothing (for dry runs)."""
    rows = _sendable(_rows(using).filter(due(now)).order_by("id"))
    if limit is not None:
        rows = rows[:limit]
    return (ClaimedRow(*values) for values in rows.iterator(chunk_size=RETENTION_CHUNK))


RETENTION_CHUNK = 1000


def delete_expired(
    *,
    now: datetime,
    retention_days: float,
    dead_retention_days: float,
    chunk_size: int = RETENTION_CHUNK,
    using: str | None = None,
) -> int:
    """Delete sent rows past retention and dead/discarded/invalid rows past theirs.

    Dead and discarded rows count from when they were given up on (`given_up_at`; rows from
    before that field, and invalid rows, from `created_at`), so each is kept for review for
    the whole `dead_retention_days`.

    In id-ordered chunks, each its own short statement, so a large first run never holds a
    long lock or a huge transaction.
    """
    sent = _rows(using).filter(
        status=OutboxStatus.SENT, sent_at__lt=now - timedelta(days=retention_days)
    )
    cutoff = now - timedelta(days=dead_retention_days)
    given_up = _rows(using).filter(
        Q(given_up_at__lt=cutoff) | Q(given_up_at=None, created_at__lt=cutoff),
        status__in=GIVEN_UP,
    )
    return _delete_in_chunks(sent, chunk_size) + _delete_in_chunks(given_up, chunk_size)


def _delete_in_chunks(rows: QuerySet[OutboxEvent], chunk_size: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.order_by("id").values_list("id", flat=True)[:chunk_size])
        if not ids:
            return deleted
        count, _ = rows.filter(id__in=ids).delete()
        deleted += count
        if len(ids) < chunk_size:
            return deleted
