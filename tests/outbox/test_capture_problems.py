"""Events lost at capture: counted in memory, saved with the next write, shown to operators."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DataError, OperationalError, transaction
from django.db.models import QuerySet
from django.test import Client

import django_tracify as tracify
from django_tracify.models import CaptureCount, OutboxEvent
from django_tracify.outbox import capture_problems, enqueueing, pause
from django_tracify.outbox.capture_problems import OUTBOX_UNWRITABLE

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/django_tracify/outboxevent/"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(capture_problems, "clock", fake)
    monkeypatch.setattr(pause, "clock", fake)
    return fake


@pytest.fixture
def production(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(RAISE_ERRORS=False)


@pytest.fixture
def failing_outbox(monkeypatch: pytest.MonkeyPatch) -> list[Exception]:
    """The outbox INSERT raises the errors put in the list (first in, first raised)."""
    errors: list[Exception] = []
    real_insert = enqueueing._execute_insert

    def insert(*args: Any, **kwargs: Any) -> Any:
        if errors:
            raise errors.pop(0)
        return real_insert(*args, **kwargs)

    monkeypatch.setattr(enqueueing, "_execute_insert", insert)
    return errors


def saved() -> dict[str, int]:
    return dict(CaptureCount.objects.values_list("kind", "count"))


def test_counts_wait_in_memory_until_the_next_successful_write(
    shop_request: Any, clock: Clock
) -> None:
    capture_problems.record(OUTBOX_UNWRITABLE)
    capture_problems.record(OUTBOX_UNWRITABLE)
    assert saved() == {}
    assert tracify.track_pageview(shop_request()) is not None
    assert saved() == {OUTBOX_UNWRITABLE: 2}
    assert capture_problems.unsaved() == {}
    capture_problems.record(OUTBOX_UNWRITABLE)
    tracify.track_pageview(shop_request())
    assert saved() == {OUTBOX_UNWRITABLE: 2}  # saved at most every SAVE_INTERVAL
    clock.now += capture_problems.SAVE_INTERVAL
    tracify.track_pageview(shop_request())
    assert saved() == {OUTBOX_UNWRITABLE: 3}


def test_counts_saved_with_a_write_that_rolls_back_wait_for_the_next(shop_request: Any) -> None:
    capture_problems.record(OUTBOX_UNWRITABLE)
    with pytest.raises(RuntimeError), transaction.atomic():
        tracify.track_purchase(
            {"number": "A-1", "total": "5.00", "currency": "EUR"}, request=shop_request()
        )
        raise RuntimeError("payment failed")
    assert saved() == {}
    assert capture_problems.unsaved() == {OUTBOX_UNWRITABLE: 1}
    with transaction.atomic():
        tracify.track_pageview(shop_request())
    assert saved() == {OUTBOX_UNWRITABLE: 1}


def test_an_unavailable_outbox_pauses_tracking_then_it_resumes_and_saves_the_count(
    shop_request: Any,
    clock: Clock,
    production: None,
    failing_outbox: list[Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing_outbox.append(OperationalError("could not connect to server: timeout expired"))
    with caplog.at_level(logging.ERROR, logger="django_tracify"):
        assert tracify.track_pageview(shop_request()) is None
        # Paused: not even tried (the error list is empty, so a try would store a row).
        assert tracify.track_conversion("L-1", "10", "EUR", request=shop_request()) is None
        assert tracify.track_purchase({"total": "x"}, request=shop_request()) is None  # invalid
    assert not OutboxEvent.objects.exists()
    (record,) = caplog.records  # one line for the pause, none per event
    expected = "pageview not recorded: the outbox database 'default' failed (OperationalError"
    assert expected in record.getMessage()
    assert "tracking pauses for 5s" in record.getMessage()
    clock.now += pause.PAUSE_SECONDS
    assert tracify.track_pageview(shop_request()) is not None
    assert saved() == {OUTBOX_UNWRITABLE: 3}


def test_one_events_bad_data_does_not_pause_tracking(
    shop_request: Any, production: None, failing_outbox: list[Exception]
) -> None:
    failing_outbox.append(DataError("unsupported Unicode escape sequence"))
    assert tracify.track_pageview(shop_request()) is None
    assert tracify.track_pageview(shop_request()) is not None
    assert saved() == {OUTBOX_UNWRITABLE: 1}


def test_with_raise_errors_the_failure_is_raised_and_still_counted(
    shop_request: Any, failing_outbox: list[Exception]
) -> None:
    failing_outbox.append(OperationalError("database is locked"))
    with pytest.raises(OperationalError, match="database is locked"):
        tracify.track_pageview(shop_request())
    assert capture_problems.unsaved() == {OUTBOX_UNWRITABLE: 1}
    assert pause.is_paused("default")


def test_a_failed_save_keeps_the_counts_for_the_next_try(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    capture_problems.record(OUTBOX_UNWRITABLE)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(QuerySet, "get_or_create", broken)
    capture_problems.save("default")
    assert capture_problems.unsaved() == {OUTBOX_UNWRITABLE: 1}
    assert "capture counts not saved yet: OperationalError" in caplog.text
    monkeypatch.undo()
    capture_problems.save("default")
    assert saved() == {OUTBOX_UNWRITABLE: 1}


def status() -> str:
    out = StringIO()
    call_command("tracify_status", stdout=out)
    return out.getvalue()


def test_tracify_status_and_the_admin_show_the_counts(admin_client: Client) -> None:
    assert "lost at capture: 0 (events lost: the outbox could not be written), last: never" in (
        status()
    )
    assert '<dd id="tracify-capture-outbox_unwritable" title="Events lost' in (
        admin_client.get(CHANGELIST).content.decode()
    )
    for _ in range(1234):
        capture_problems.record(OUTBOX_UNWRITABLE)
    capture_problems.record(capture_problems.NO_CLIENT_IP)
    capture_problems.save("default")
    output = status()
    assert re.search(r"^lost at capture: 1,234 \(events lost: .*\), last: .* ago\)$", output, re.M)
    assert re.search(r"^no client IP:   1 \(events lost: the visitor's IP", output, re.M)
    html = admin_client.get(CHANGELIST).content.decode()
    assert re.search(r'<dd id="tracify-capture-outbox_unwritable" title="[^"]+">1234</dd>', html)
    assert re.search(r'<dd id="tracify-capture-no_client_ip" title="[^"]+">1</dd>', html)


def test_events_lost_for_want_of_a_client_ip_are_counted_for_the_operator(
    production: None, shop_request: Callable[..., Any]
) -> None:
    """Behind a proxy on a unix socket, without TRUSTED_PROXY_COUNT: REMOTE_ADDR is empty."""
    for _ in range(3):
        assert tracify.track_pageview(shop_request(REMOTE_ADDR="")) is None

    assert not OutboxEvent.objects.exists()
    # The first is saved at once (the database is fine), the next within SAVE_INTERVAL wait.
    assert saved() == {capture_problems.NO_CLIENT_IP: 1}
    assert capture_problems.unsaved() == {capture_problems.NO_CLIENT_IP: 2}
    assert re.search(r"^no client IP:   1 \(events lost: the visitor's IP", status(), re.M)
