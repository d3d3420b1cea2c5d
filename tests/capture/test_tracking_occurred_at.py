"""occurred_at: a purchase, conversion or survey recorded after the fact (an imported order,
a payment webhook that arrives late) carries the time it happened."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

import django_tracify as tracify
from django_tracify.errors import TracifyValidationError
from django_tracify.events.values import DATETIME_FORMAT
from django_tracify.models import OutboxEvent, OutboxStatus

pytestmark = pytest.mark.django_db

ORDER = {"number": "A-2001", "total": "20.00", "currency": "EUR"}
UTC = dt.timezone.utc


def utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(UTC).strftime(DATETIME_FORMAT)


@pytest.fixture
def snapshot(shop_request: Any) -> Any:
    """What a shop keeps on its order at checkout, for the webhook."""
    return tracify.capture_identity(shop_request("/checkout/"))


def test_a_late_webhook_sends_when_the_purchase_happened(snapshot: Any) -> None:
    new_york = dt.timezone(dt.timedelta(hours=-5))
    placed = (timezone.now() - dt.timedelta(days=2)).astimezone(new_york).replace(microsecond=0)
    event = tracify.track_purchase(ORDER, identity=snapshot, occurred_at=placed)
    assert event is not None
    assert event.payload["datetime"] == utc_text(placed)


def test_each_after_the_fact_call_takes_occurred_at(snapshot: Any) -> None:
    when = timezone.now() - dt.timedelta(hours=3)
    rows = [
        tracify.track_conversion("lead-1", "5", "EUR", identity=snapshot, occurred_at=when),
        tracify.track_post_purchase_survey("A-2001", "tv", identity=snapshot, occurred_at=when),
    ]
    assert [row.payload["datetime"] if row else None for row in rows] == [utc_text(when)] * 2


def test_the_async_twins_take_occurred_at(snapshot: Any) -> None:
    when = timezone.now() - dt.timedelta(hours=1)

    async def webhook() -> list[Any]:
        return [
            await tracify.atrack_purchase(ORDER, identity=snapshot, occurred_at=when),
            await tracify.atrack_conversion("c-1", "1", "EUR", identity=snapshot, occurred_at=when),
            await tracify.atrack_post_purchase_survey(
                "A-2001", "tv", identity=snapshot, occurred_at=when
            ),
        ]

    rows = async_to_sync(webhook)()
    assert [row.payload["datetime"] if row else None for row in rows] == [utc_text(when)] * 3


def test_a_naive_datetime_is_read_in_the_current_time_zone(snapshot: Any) -> None:
    naive = (timezone.now() - dt.timedelta(days=1)).replace(tzinfo=None, microsecond=0)
    for zone in ("Europe/Berlin", "America/New_York"):
        with timezone.override(zone):
            event = tracify.track_conversion(zone, "1", "EUR", identity=snapshot, occurred_at=naive)
        assert event is not None
        assert event.payload["datetime"] == utc_text(naive.replace(tzinfo=ZoneInfo(zone)))


def test_a_time_in_the_future_is_refused(snapshot: Any) -> None:
    tomorrow = timezone.now() + dt.timedelta(days=1)
    with pytest.raises(TracifyValidationError, match=r"occurred_at: .* is in the future"):
        tracify.track_purchase(ORDER, identity=snapshot, occurred_at=tomorrow)


def test_another_machines_clock_a_little_ahead_is_sent_as_now(snapshot: Any) -> None:
    before = utc_text(timezone.now())
    ahead = timezone.now() + dt.timedelta(minutes=2)
    event = tracify.track_purchase(ORDER, identity=snapshot, occurred_at=ahead)
    after = utc_text(timezone.now())
    assert event is not None
    assert before <= event.payload["datetime"] <= after


def test_a_time_older_than_the_outbox_would_send_is_refused(
    snapshot: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(MAX_AGE_SECONDS=3600)
    with pytest.raises(TracifyValidationError, match=r"occurred_at: .*MAX_AGE_SECONDS"):
        tracify.track_purchase(
            ORDER, identity=snapshot, occurred_at=timezone.now() - dt.timedelta(hours=2)
        )
    recent = tracify.track_purchase(
        ORDER, identity=snapshot, occurred_at=timezone.now() - dt.timedelta(minutes=30)
    )
    assert recent is not None


def test_not_a_datetime_is_refused(snapshot: Any) -> None:
    with pytest.raises(TracifyValidationError, match=r"occurred_at: .* is not a datetime"):
        tracify.track_purchase(ORDER, identity=snapshot, occurred_at="2026-12-01 10:00:00")


def test_in_production_a_bad_occurred_at_is_an_invalid_row_naming_the_order(
    snapshot: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    long_ago = timezone.now() - dt.timedelta(days=30)
    assert tracify.track_purchase(ORDER, identity=snapshot, occurred_at=long_ago) is None
    invalid = OutboxEvent.objects.get()
    assert invalid.status == OutboxStatus.INVALID
    assert invalid.last_error.startswith("occurred_at: ")
    assert invalid.last_error.endswith("[order_id A-2001]")
