"""Writing events into the outbox. The only module that changes outbox rows."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from django_tracify.events import Event
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database


def enqueue(event: Event) -> OutboxEvent:
    """Store an event in the caller's transaction; a repeated dedup key keeps the first row."""
    using = outbox_database()
    if event.dedup_key:
        existing = OutboxEvent.objects.using(using).filter(dedup_key=event.dedup_key).first()
        if existing is not None:
            return existing
    try:
        # A savepoint: a failed insert must not poison the shop's own transaction.
        with transaction.atomic(using=using):
            return OutboxEvent.objects.using(using).create(
                event_type=event.event_type, payload=event.payload, dedup_key=event.dedup_key
            )
    except IntegrityError:
        if not event.dedup_key:
            raise
        return OutboxEvent.objects.using(using).get(dedup_key=event.dedup_key)


def record_invalid(event_type: str, problem: str) -> OutboxEvent:
    """Keep an admin-visible row for a call whose input was invalid; it is never sent."""
    using = outbox_database()
    with transaction.atomic(using=using):
        return OutboxEvent.objects.using(using).create(
            event_type=event_type,
            payload={},
            status=OutboxStatus.INVALID,
            last_error=problem[:2000],
        )


def retry_now(queryset: QuerySet[OutboxEvent]) -> int:
    """Make dead, discarded or pending rows due now with a fresh attempt budget."""
    retryable = (OutboxStatus.DEAD, OutboxStatus.DISCARDED, OutboxStatus.PENDING)
    return queryset.filter(status__in=retryable).update(
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=timezone.now(),
        claim_token=None,
        lease_expires_at=None,
    )


def discard(queryset: QuerySet[OutboxEvent]) -> int:
    """Give up on rows that are not delivered; they are kept for review until retention."""
    return queryset.filter(status__in=(OutboxStatus.PENDING, OutboxStatus.DEAD)).update(
        status=OutboxStatus.DISCARDED, claim_token=None, lease_expires_at=None
    )
