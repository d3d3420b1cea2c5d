from __future__ import annotations

import pytest

from django_tracify import outbox
from django_tracify.events.builders import Event
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.factories import OutboxRow

pytestmark = pytest.mark.django_db


def test_enqueue_without_dedup_key_always_inserts() -> None:
    event = Event("pageview", {"type": "pageview"})
    assert outbox.enqueue(event).pk != outbox.enqueue(event).pk


def test_retry_now_resets_dead_and_discarded_rows_only() -> None:
    dead, discarded, sent, invalid = (
        OutboxRow(status=status, attempts=3) for status in ("dead", "discarded", "sent", "invalid")
    )
    assert outbox.retry_now(OutboxEvent.objects.all()) == 2
    for row in (dead, discarded):
        row.refresh_from_db()
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
    sent.refresh_from_db()
    invalid.refresh_from_db()
    assert (sent.status, invalid.status) == ("sent", "invalid")


def test_discard_leaves_sent_and_sending_rows_alone() -> None:
    for status in ("pending", "sending", "sent"):
        OutboxRow(status=status, attempts=3)
    assert outbox.discard(OutboxEvent.objects.all()) == 1
    assert [r.status for r in OutboxEvent.objects.order_by("id")] == [
        "discarded",
        "sending",
        "sent",
    ]


def test_the_returned_row_is_the_stored_row() -> None:
    row = outbox.enqueue(Event("purchase", {"type": "purchase", "data": {"é": "1"}}, "p:1"))
    stored = OutboxEvent.objects.get(pk=row.pk)
    fields = ("event_type", "payload", "status", "attempts", "dedup_key", "last_error")
    assert [getattr(row, name) for name in fields] == [getattr(stored, name) for name in fields]
    assert (row.created_at, row.next_attempt_at) == (stored.created_at, stored.next_attempt_at)
    assert (stored.status, stored.claim_token, stored.sent_at) == (OutboxStatus.PENDING, None, None)


def test_a_repeated_dedup_key_returns_the_first_row_as_not_new() -> None:
    first, created = outbox.store(Event("purchase", {"n": 1}, "purchase:A-1"))
    again, created_again = outbox.store(Event("purchase", {"n": 2}, "purchase:A-1"))
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk and again.payload == {"n": 1}


def test_add_stores_without_a_row_and_keeps_a_dedup_keys_first() -> None:
    assert outbox.add(Event("pageview", {"n": 1}))
    assert outbox.add(Event("purchase", {"n": 1}, "purchase:B-1"))
    assert not outbox.add(Event("purchase", {"n": 2}, "purchase:B-1"))
    stored = {(row.event_type, row.payload["n"]) for row in OutboxEvent.objects.all()}
    assert stored == {("pageview", 1), ("purchase", 1)}
