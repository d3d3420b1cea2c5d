"""The outbox's due times are UTC whatever USE_TZ says: no hour lost at a clock change."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from zoneinfo import ZoneInfo

import pytest
import responses
import time_machine
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

import django_tracify as tracify
from django_tracify.conf import settings
from django_tracify.delivery import flushing
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.fixed_jitter import Highest
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

# Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:00-03:00 local happens twice.
BERLIN = ZoneInfo("Europe/Berlin")
BEFORE_FOLD = datetime(2026, 10, 25, 0, 59, 30, tzinfo=timezone.utc)  # 02:59:30 CEST


def berlin(moment: datetime) -> datetime:
    # A ZoneInfo destination also makes it the process's local time zone.
    return moment.astimezone(BERLIN)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox_alias(request: pytest.FixtureRequest, receiver_settings: Callable[..., None]) -> str:
    """The default SQLite database, or a PostgreSQL one (its session in Europe/Berlin)."""
    if request.param == "sqlite":
        return "default"
    alias: str = request.getfixturevalue("postgres_outbox").alias
    receiver_settings(DATABASE=alias)
    return alias


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Berlin")
def test_a_retry_due_in_the_repeated_hour_is_claimed_when_due(
    receiver: Receiver, shop_request: object, outbox_alias: str
) -> None:
    with time_machine.travel(berlin(BEFORE_FOLD), tick=False) as clock:
        event = tracify.track_pageview(shop_request("/p/1"))  # type: ignore[operator]
        assert event is not None
        receiver.script("http_500")
        assert flushing.flush(rng=Highest()).retried == 1
        delay = settings.BACKOFF_BASE_SECONDS
        # Due at 01:00:30 UTC, the second 02:00:30 local (CET): not at 03:00:30 CET.
        clock.move_to(berlin(BEFORE_FOLD + timedelta(seconds=delay + 1)))
        out = io.StringIO()
        call_command("tracify_flush", stdout=out, stderr=io.StringIO())
    assert "sent 1," in out.getvalue()
    assert OutboxEvent.objects.using(outbox_alias).get(pk=event.pk).status == OutboxStatus.SENT


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Berlin")
def test_times_are_stored_as_naive_utc_without_use_tz(shop_request: object) -> None:
    with time_machine.travel(berlin(BEFORE_FOLD), tick=False):
        event = tracify.track_pageview(shop_request("/p/1"))  # type: ignore[operator]
    assert event is not None
    stored = OutboxEvent.objects.get(pk=event.pk)
    assert stored.created_at == BEFORE_FOLD.replace(tzinfo=None)
    assert stored.next_attempt_at == BEFORE_FOLD.replace(tzinfo=None)


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Berlin")
def test_status_labels_its_times_utc(receiver: Receiver, shop_request: object) -> None:
    with time_machine.travel(berlin(BEFORE_FOLD), tick=False):
        tracify.track_pageview(shop_request("/p/1"))  # type: ignore[operator]
        flushed = io.StringIO()
        call_command("tracify_flush", stdout=flushed, stderr=io.StringIO())
        out = io.StringIO()
        call_command("tracify_status", stdout=out, stderr=io.StringIO())
    assert flushed.getvalue().startswith("2026-10-25 00:59:30 UTC sent 1,")
    assert "last success:   2026-10-25 00:59:30 UTC" in out.getvalue()


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Berlin")
def test_the_admin_shows_outbox_times_in_local_time_named(
    admin_client: Client, shop_request: object
) -> None:
    with time_machine.travel(berlin(BEFORE_FOLD), tick=False):
        event = tracify.track_pageview(shop_request("/p/1"))  # type: ignore[operator]
    assert event is not None
    url = reverse("admin:django_tracify_outboxevent_change", args=[event.pk])
    html = admin_client.get(url).content.decode()
    assert "2026-10-25 02:59:30 CEST" in html  # created at, and due at
    list_html = admin_client.get(reverse("admin:django_tracify_outboxevent_changelist"))
    assert 'title="2026-10-25 02:59:30 CEST"' in list_html.content.decode()


@override_settings(USE_TZ=False, TIME_ZONE="Europe/Berlin")
@responses.activate
def test_a_retry_after_http_date_is_honoured_without_use_tz(shop_request: object) -> None:
    with time_machine.travel(berlin(BEFORE_FOLD), tick=False):
        tracify.track_pageview(shop_request("/p/1"))  # type: ignore[operator]
        later = formatdate((BEFORE_FOLD + timedelta(seconds=30)).timestamp(), usegmt=True)
        responses.post(settings.ENDPOINT, status=503, headers={"Retry-After": later})
        pauses: list[float] = []
        result = flushing.flush(sleep=pauses.append, max_pause_seconds=60)
    assert pauses == [30.0]
    assert result.retried == 1
    due_at = OutboxEvent.objects.get().next_attempt_at
    assert due_at == (BEFORE_FOLD + timedelta(seconds=30)).replace(tzinfo=None)
