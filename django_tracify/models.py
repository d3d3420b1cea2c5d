"""The outbox: one row per event, from the moment it is tracked until it is delivered."""

from __future__ import annotations

from typing import Any

from django.db import models

from django_tracify.clock import utc_now

# The index the claim reads pending rows through, in id order.
STATUS_ID_INDEX = "tracify_status_id"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENDING = "sending", "sending"
    SENT = "sent", "sent"
    DEAD = "dead", "dead"
    DISCARDED = "discarded", "discarded"
    INVALID = "invalid", "invalid (not built)"


class OutboxEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=32)
    payload = models.JSONField(help_text="The exact event body that is sent to Tracify.")
    status = models.CharField(max_length=16, choices=OutboxStatus, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=utc_now)
    dedup_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    last_error = models.TextField(blank=True, default="")
    last_http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=utc_now)
    sent_at = models.DateTimeField(null=True, blank=True)
    given_up_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became dead or discarded."
    )
    claim_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "outbox event"
        verbose_name_plural = "outbox events"
        ordering = ("-id",)
        # No partial indexes: MariaDB and MySQL have none (models.W037). The claim reads
        # pending rows in id order through (status, id); requeue_expired finds sending rows
        # by lease through (status, lease_expires_at).
        indexes = (
            models.Index(fields=["status", "next_attempt_at"], name="tracify_status_due"),
            models.Index(fields=["status", "lease_expires_at"], name="tracify_status_lease"),
            models.Index(fields=["status", "id"], name=STATUS_ID_INDEX),
            models.Index(fields=["event_type", "id"], name="tracify_type_id"),
            models.Index(fields=["created_at"], name="tracify_created"),
            models.Index(fields=["status", "sent_at"], name="tracify_status_sent"),
            # Pending rows that failed before (status = pending AND attempts > 0); a plain
            # index, as MariaDB/MySQL ignore partial ones.
            models.Index(fields=["status", "attempts"], name="tracify_retrying"),
        )
        permissions = (("operate_outboxevent", "Can retry and discard outbox events"),)

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk} ({self.status})"

    def __repr__(self) -> str:
        return f"<OutboxEvent {self.pk} {self.event_type} {self.status}>"


class FlushOutcome(models.TextChoices):
    OK = "ok", "ok"
    FAILING = "failing", "failing (events wait for a retry)"
    UNAUTHORISED = "unauthorised", "unauthorised (API key rejected)"
    UNREACHABLE = "unreachable", "endpoint unreachable"
    ERROR = "error", "error"


class FlushState(models.Model):
    """One row: how the most recent flush went, for the admin summary and tracify_status."""

    # FlushState.OK ... as before the outcomes had a class of their own.
    OK = FlushOutcome.OK
    FAILING = FlushOutcome.FAILING
    UNAUTHORISED = FlushOutcome.UNAUTHORISED
    UNREACHABLE = FlushOutcome.UNREACHABLE
    ERROR = FlushOutcome.ERROR

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_flush_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=16, choices=FlushOutcome, blank=True, default="")
    last_message = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "flush state"

    def __str__(self) -> str:
        return f"last flush: {self.last_outcome or 'never'}"

    @classmethod
    def load(cls, using: str | None = None) -> FlushState:
        manager: Any = cls.objects.using(using) if using else cls.objects
        state, _ = manager.get_or_create(id=1)
        return state  # type: ignore[no-any-return]

    @classmethod
    def row(cls, using: str) -> models.QuerySet[FlushState]:
        """The one row, to read or update; empty before the first flush (load() inserts it)."""
        return cls.objects.using(using).filter(id=1)


class CaptureCount(models.Model):
    """How many events went wrong while being captured, by kind (see capture_problems)."""

    kind = models.CharField(max_length=32, primary_key=True)
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField(default=utc_now)
    last_at = models.DateTimeField(default=utc_now)

    class Meta:
        verbose_name = "capture count"

    def __str__(self) -> str:
        return f"{self.kind}: {self.count}"
