from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.dispatch import Signal
from django.utils import timezone

from django_tracify import signals
from django_tracify.delivery import flushing
from django_tracify.delivery.flushing import FlushResult
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.factories import OutboxRow, shop_events
from tests.fixed_jitter import Highest
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

DELIVERY_SIGNALS = (
    signals.events_sent,
    signals.events_retried,
    signals.events_dead,
    signals.flush_finished,
)


@pytest.fixture
def heard() -> Iterator[list[tuple[Signal, dict[str, Any]]]]:
    """Every delivery signal sent, with its arguments, in order."""
    calls: list[tuple[Signal, dict[str, Any]]] = []

    def listen(signal: Signal) -> Callable[..., None]:
        def receiver(**kwargs: Any) -> None:
            kwargs.pop("signal")
            calls.append((signal, kwargs))

        return receiver

    receivers = [(signal, listen(signal)) for signal in DELIVERY_SIGNALS]
    for signal, receiver in receivers:
        signal.connect(receiver, sender=OutboxEvent)
    yield calls
    for signal, receiver in receivers:
        signal.disconnect(receiver, sender=OutboxEvent)


def of(calls: list[tuple[Signal, dict[str, Any]]], signal: Signal) -> list[dict[str, Any]]:
    return [kwargs for sent, kwargs in calls if sent is signal]


def test_a_flush_tells_what_it_sent_and_gave_up_on(receiver: Receiver, heard: Any) -> None:
    good = [row.pk for row in shop_events()]
    bad = OutboxRow(rejected=True).pk
    result = flushing.flush()
    assert (result.sent, result.dead) == (3, 1)

    sent = of(heard, signals.events_sent)
    assert sorted(id_ for call in sent for id_ in call["event_ids"]) == good
    assert sum((call["event_types"] for call in sent), Counter()) == Counter(
        pageview=2, addtocart=1
    )
    (dead,) = of(heard, signals.events_dead)
    assert dead["event_ids"] == [bad]
    assert dead["event_types"] == Counter(purchase=1)
    assert dead["http_status"] == OutboxEvent.objects.get(pk=bad).last_http_status
    assert dead["error"]
    assert of(heard, signals.events_retried) == []

    (finished,) = of(heard, signals.flush_finished)
    assert finished["result"] is result
    assert finished["outcome"] == FlushState.OK
    assert heard[-1][0] is signals.flush_finished  # the pass ends after its settlements


def test_a_failed_attempt_tells_when_the_events_are_tried_again(
    receiver: Receiver, receiver_settings: Callable[..., None], heard: Any
) -> None:
    receiver_settings(BACKOFF_BASE_SECONDS=60)
    ids = [row.pk for row in shop_events()]
    receiver.script("http_500")
    flushing.flush(rng=Highest())

    (retried,) = of(heard, signals.events_retried)
    assert retried["event_ids"] == ids
    assert retried["event_types"] == Counter(pageview=2, addtocart=1)
    assert retried["http_status"] == 500
    due: datetime = retried["next_attempt_at"]
    assert due == OutboxEvent.objects.get(pk=ids[0]).next_attempt_at
    (finished,) = of(heard, signals.flush_finished)
    assert finished["outcome"] == FlushState.FAILING
    assert finished["result"].retried == 3


def test_a_retry_that_gives_up_on_the_old_events_tells_which(
    receiver: Receiver, receiver_settings: Callable[..., None], heard: Any
) -> None:
    receiver_settings(MAX_AGE_SECONDS=3600)
    old, new, newer = (row.pk for row in shop_events())
    OutboxEvent.objects.filter(pk=old).update(created_at=timezone.now() - timedelta(hours=2))
    receiver.script("http_500")
    flushing.flush()

    (retried,) = of(heard, signals.events_retried)
    (dead,) = of(heard, signals.events_dead)
    assert dead["event_ids"] == [old]
    assert dead["event_types"] == Counter(pageview=1)
    assert retried["event_ids"] == [new, newer]
    assert retried["event_types"] == Counter(addtocart=1, pageview=1)


def test_unauthorised_sends_no_event_signal(receiver: Receiver, heard: Any) -> None:
    shop_events()
    receiver.script("http_401")
    flushing.flush()
    assert [signal for signal, _ in heard] == [signals.flush_finished]
    assert heard[0][1]["outcome"] == FlushState.UNAUTHORISED


def test_a_receiver_that_raises_never_breaks_a_flush(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("metrics backend down")

    shop_events()
    for signal in DELIVERY_SIGNALS:
        signal.connect(broken, sender=OutboxEvent)
    try:
        with caplog.at_level(logging.ERROR, logger="django_tracify"):
            result = flushing.flush()
    finally:
        for signal in DELIVERY_SIGNALS:
            signal.disconnect(broken, sender=OutboxEvent)
    assert result.sent == 3
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.SENT}
    assert FlushState.load().last_outcome == FlushState.OK
    failures = [r for r in caplog.records if "receiver of a delivery signal failed" in r.message]
    assert len(failures) == 2  # events_sent (one batch) and flush_finished
    assert all(r.exc_info and "metrics backend down" in str(r.exc_info[1]) for r in failures)


def test_a_pass_that_raises_still_says_it_finished(
    receiver: Receiver, heard: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop_events()

    def broken(**kwargs: Any) -> int:
        raise RuntimeError("disk full")

    monkeypatch.setattr("django_tracify.outbox.delete_expired", broken)
    with pytest.raises(RuntimeError):
        flushing.flush()
    (finished,) = of(heard, signals.flush_finished)
    assert finished["outcome"] == FlushState.ERROR
    assert finished["result"].sent == 3


@pytest.mark.django_db(transaction=True)
def test_signals_come_after_the_rows_were_settled_and_committed(receiver: Receiver) -> None:
    seen: list[tuple[str, bool, list[str]]] = []

    def look(*, signal: Signal, event_ids: list[int] | None = None, **kwargs: Any) -> None:
        in_transaction = connections["default"].in_atomic_block
        rows = OutboxEvent.objects.filter(pk__in=event_ids or [])
        seen.append(
            (kwargs.get("using", ""), in_transaction, list(rows.values_list("status", flat=True)))
        )

    ids = [row.pk for row in shop_events()]
    OutboxRow(rejected=True)
    for signal in DELIVERY_SIGNALS:
        signal.connect(look, sender=OutboxEvent)
    try:
        flushing.flush()
        OutboxEvent.objects.filter(pk__in=ids).update(
            status=OutboxStatus.PENDING, next_attempt_at=timezone.now()
        )
        receiver.script("http_500")
        flushing.flush()
    finally:
        for signal in DELIVERY_SIGNALS:
            signal.disconnect(look, sender=OutboxEvent)
    assert all(not in_transaction for _, in_transaction, _ in seen)
    statuses = [statuses for _, _, statuses in seen if statuses]
    # The rejected batch was halved: [1, 2] sent, then [3] sent and [bad] dead.
    assert statuses == [["sent"] * 2, ["sent"], ["dead"], ["pending"] * 3]
    assert {using for using, _, _ in seen} == {"default"}


def test_a_dry_run_sends_no_signal(heard: Any) -> None:
    shop_events()
    result: FlushResult = flushing.flush(dry_run=True)
    assert result.would_send == 3
    assert heard == []
