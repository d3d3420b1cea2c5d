from __future__ import annotations

import pytest

from django_tracify import outbox
from django_tracify.events import Event
from django_tracify.models import OutboxEvent, OutboxStatus

pytestmark = pytest.mark.django_db


def make(status: str, attempts: int = 3) -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_type="pageview", payload={"type": "pageview"}, status=status, attempts=attempts
    )


def test_enqueue_without_dedup_key_always_inserts() -> None:
    event = Event("pageview", {"type": "pageview"})
    assert outbox.enqueue(event).pk != outbox.enqueue(event).pk


def test_retry_now_resets_dead_and_discarded_rows_only() -> None:
    dead, discarded, sent = make("dead"), make("discarded"), make("sent")
    invalid = make("invalid")
    assert outbox.retry_now(OutboxEvent.objects.all()) == 2
    for row in (dead, discarded):
        row.refresh_from_db()
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    sent.refresh_from_db()
    invalid.refresh_from_db()
    assert (sent.status, invalid.status) == ("sent", "invalid")


def test_discard_leaves_sent_and_sending_rows_alone() -> None:
    for status in ("pending", "sending", "sent"):
        make(status)
    assert outbox.discard(OutboxEvent.objects.all()) == 1
    assert [r.status for r in OutboxEvent.objects.order_by("id")] == [
        "discarded",
        "sending",
        "sent",
    ]
