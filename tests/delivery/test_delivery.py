from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
import responses
from django.db import OperationalError
from django.db.models import QuerySet
from django.utils import timezone

import django_tracify as tracify
from django_tracify import outbox
from django_tracify.delivery.flushing import FlushResult, flush, oversize, preview
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.factories import OutboxRow
from tests.fixed_jitter import Highest, Lowest
from tests.receiver_fixtures import RECEIVER_API_KEY
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

ENDPOINT = "https://tracify.invalid/api/v1/events"
POISON = "poison-7e1"


class FakeClock:
    """Injected time: starts a minute ahead so rows created during a test are due."""

    def __init__(self) -> None:
        self.now = timezone.now() + timedelta(minutes=1)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


def numbered(count: int) -> list[OutboxEvent]:
    """Pending pageviews that carry their number, 0 to count - 1, in the body Tracify gets."""
    return [OutboxRow(data={"n": str(n)}) for n in range(count)]


def reloaded(events: list[OutboxEvent]) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(id__in=[e.id for e in events]).order_by("id"))


def sent_numbers() -> list[int]:
    return [
        int(event["data"]["n"])
        for call in responses.calls
        if call.response is not None and json.loads(call.response.text).get("status") is True
        for event in json.loads(call.request.body)["events"]
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracify_api(tracify_settings: Callable[..., None]) -> Callable[..., None]:
    """Settings for the `responses` tests: small batches, round backoff numbers."""

    def apply(**values: Any) -> None:
        defaults = {"ENDPOINT": ENDPOINT, "BATCH_SIZE": 2, "BACKOFF_BASE_SECONDS": 30}
        tracify_settings(**{**defaults, **values})

    apply()
    return apply


# --- the rules, against a scripted endpoint (responses) ---------------------------------------


@responses.activate
def test_accepted_rows_become_sent(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    events = OutboxRow.create_batch(3)
    result = flush(clock=clock)
    assert (result.sent, result.retried, result.dead, result.left) == (3, 0, 0, 0)
    assert len(responses.calls) == 2  # BATCH_SIZE 2
    for row in reloaded(events):
        assert (row.status, row.sent_at, row.attempts) == (OutboxStatus.SENT, clock(), 1)
        assert row.claim_token is None and row.lease_expires_at is None
    state = FlushState.load()
    assert (state.last_outcome, state.last_flush_at, state.last_success_at) == (
        FlushState.OK,
        clock(),
        clock(),
    )


@responses.activate
def test_batch_size_and_limit(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    numbered(5)
    result = flush(clock=clock, batch_size=3, limit=4)
    assert [len(json.loads(c.request.body)["events"]) for c in responses.calls] == [3, 1]
    assert (result.sent, result.left) == (4, 1)
    assert sent_numbers() == [0, 1, 2, 3]  # oldest first


@responses.activate
def test_future_and_finished_rows_are_not_sent(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    OutboxRow(next_attempt_at=clock() + timedelta(seconds=5))
    OutboxRow(status=OutboxStatus.DEAD)
    OutboxRow(status=OutboxStatus.INVALID)
    assert flush(clock=clock).sent == 0
    assert not responses.calls


@responses.activate
def test_a_retryable_answer_backs_off_and_ends_the_pass(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, status=500, json={"status": False, "error": "db down"})
    first, second = OutboxRow.create_batch(2), OutboxRow.create_batch(2)
    result = flush(clock=clock, rng=Highest())
    assert len(responses.calls) == 1  # no hammering: the rest waits for the next pass
    assert (result.retried, result.left, result.outcome) == (2, 2, FlushState.FAILING)
    for row in reloaded(first):
        assert (row.status, row.attempts, row.last_http_status) == (OutboxStatus.PENDING, 1, 500)
        assert row.last_error == "HTTP 500: db down"
        assert row.next_attempt_at == clock() + timedelta(seconds=30)
    assert [row.attempts for row in reloaded(second)] == [0, 0]
    assert FlushState.load().last_success_at is None


@responses.activate
def test_backoff_grows_with_the_attempts_made(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, status=503)
    row = OutboxRow(attempts=3)
    flush(clock=clock, rng=Highest())
    (row,) = reloaded([row])
    assert (row.attempts, row.next_attempt_at) == (4, clock() + timedelta(seconds=30 * 8))


@responses.activate
def test_retry_after_pauses_the_flush_and_is_never_undercut(
    clock: FakeClock, tracify_api: Any
) -> None:
    responses.post(ENDPOINT, status=429, headers={"Retry-After": "7"})
    responses.post(ENDPOINT, json={"status": True})
    limited, later = OutboxRow.create_batch(2), OutboxRow.create_batch(2)
    started = clock()
    result = flush(clock=clock, sleep=clock.sleep, rng=Lowest())  # jitter alone would say 0 s
    assert clock.slept == [7.0]
    assert (result.sent, result.retried, result.paused_seconds) == (4, 2, 7.0)
    for row in reloaded(limited):
        # retried in the same pass, once the pause was over
        assert (row.status, row.attempts, row.last_http_status) == ("sent", 2, 429)
        assert row.sent_at == started + timedelta(seconds=7)
    assert {(row.status, row.attempts) for row in reloaded(later)} == {("sent", 1)}


@responses.activate
def test_a_retry_after_beyond_the_pause_budget_ends_the_pass(
    clock: FakeClock, tracify_api: Any
) -> None:
    responses.post(ENDPOINT, status=429, headers={"Retry-After": "600"})
    OutboxRow.create_batch(4)
    result = flush(clock=clock, sleep=clock.sleep, rng=Lowest(), max_pause_seconds=60)
    assert clock.slept == []
    assert len(responses.calls) == 1
    assert result.retried == 2
    delayed = OutboxEvent.objects.filter(next_attempt_at=clock() + timedelta(seconds=600))
    assert delayed.count() == 2


@responses.activate
def test_retry_after_zero_cannot_keep_a_pass_going(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, status=429, headers={"Retry-After": "0"})
    OutboxRow.create_batch(2)
    result = flush(clock=clock, sleep=clock.sleep, rng=Lowest(), max_pause_seconds=5)
    assert clock.slept == [1.0] * 5
    assert len(responses.calls) == 6
    assert result.outcome == FlushState.FAILING


@responses.activate
def test_rows_die_after_max_attempts_or_max_age(clock: FakeClock, tracify_api: Any) -> None:
    tracify_api(MAX_ATTEMPTS=3, MAX_AGE_SECONDS=3600, BATCH_SIZE=10)
    responses.post(ENDPOINT, status=502)
    tired = OutboxRow.create_batch(1, attempts=2)
    old = OutboxRow.create_batch(1, created_at=clock() - timedelta(hours=2))
    young = OutboxRow.create_batch(1, attempts=1)
    result = flush(clock=clock)
    assert (result.dead, result.retried) == (2, 1)
    for row in reloaded(tired + old):
        assert (row.status, row.last_http_status) == (OutboxStatus.DEAD, 502)
        assert row.last_error.startswith("HTTP 502")
    assert [(r.status, r.attempts) for r in reloaded(young)] == [(OutboxStatus.PENDING, 2)]


@responses.activate
@pytest.mark.parametrize("seed", range(5))
def test_with_the_defaults_a_failing_event_lives_until_max_age(
    clock: FakeClock, tracify_settings: Callable[..., None], seed: int
) -> None:
    tracify_settings(ENDPOINT=ENDPOINT)  # every retry setting at its default
    responses.post(ENDPOINT, status=503)
    event = OutboxRow(created_at=clock())
    rng = random.Random(seed)
    while event.status != OutboxStatus.DEAD:
        clock.now = max(clock.now, event.next_attempt_at)
        flush(clock=clock, rng=rng)
        event.refresh_from_db()
    age = (clock() - event.created_at).total_seconds()
    # Given up on by age, not by a count of attempts: the first failed attempt past 7 days.
    assert 7 * 86_400 <= age <= 7 * 86_400 + 6 * 3600
    assert event.given_up_at == clock()


@responses.activate
def test_unauthorised_stops_and_burns_nothing(
    clock: FakeClock, tracify_api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(ENDPOINT, status=401, json={"status": False, "error": "invalid token"})
    due_at = clock() - timedelta(minutes=5)
    events = OutboxRow.create_batch(6, attempts=2, next_attempt_at=due_at)
    with caplog.at_level(logging.ERROR, logger="django_tracify"):
        result = flush(clock=clock)
    assert len(responses.calls) == 1
    assert (result.unauthorised, result.sent, result.retried, result.dead) == (True, 0, 0, 0)
    for row in reloaded(events):
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 2, due_at)
        assert row.claim_token is None
    claimed = reloaded(events)[:2]
    assert {(r.last_http_status, r.last_error) for r in claimed} == {
        (401, "HTTP 401: invalid token")
    }
    assert "TRACIFY['API_KEY']" in caplog.text
    state = FlushState.load()
    assert state.last_outcome == FlushState.UNAUTHORISED
    assert "API_KEY" in state.last_message


@responses.activate
def test_a_rejected_batch_is_halved_until_the_bad_event_is_alone(
    clock: FakeClock, tracify_api: Any
) -> None:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        events = json.loads(request.body or b"")["events"]
        if any(event["data"]["n"] == "3" for event in events):
            return 200, {}, json.dumps({"status": False, "error": "event 3 is broken"})
        return 200, {}, json.dumps({"status": True})

    responses.add_callback(responses.POST, ENDPOINT, callback=answer)
    tracify_api(BATCH_SIZE=8)
    events = numbered(8)
    result = flush(clock=clock)
    assert (result.sent, result.dead, result.retried) == (7, 1, 0)
    assert sorted(sent_numbers()) == [0, 1, 2, 4, 5, 6, 7]
    poison = reloaded(events)[3]
    assert (poison.status, poison.last_http_status) == (OutboxStatus.DEAD, 200)
    assert poison.last_error == "HTTP 200 status false: event 3 is broken"
    assert len(responses.calls) == 7  # 8 -> 4+4 -> 2+2 -> 1+1: log2, not one per event


@responses.activate
def test_bodies_stay_under_max_body_bytes(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    tracify_api(BATCH_SIZE=50, MAX_BODY_BYTES=1024)
    for n in range(10):
        OutboxRow(payload={"n": n, "pad": "x" * 300})
    huge = OutboxRow(payload={"n": 99, "pad": "x" * 2000})
    result = flush(clock=clock)
    sizes = [len(call.request.body) for call in responses.calls]
    assert max(sizes) <= 1024 < max(sizes) + len(json.dumps({"n": 9, "pad": "x" * 300}))
    assert len(sizes) == 4  # 3 + 3 + 3 + 1; the oversized one is never sent
    assert (result.sent, result.dead) == (10, 1)
    huge.refresh_from_db()
    assert huge.status == OutboxStatus.DEAD
    assert "MAX_BODY_BYTES" in huge.last_error


@responses.activate
def test_an_expired_lease_makes_rows_claimable_again(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    crashed = OutboxRow.create_batch(
        2, status=OutboxStatus.SENDING, lease_expires_at=clock() - timedelta(seconds=1)
    )
    busy = OutboxRow.create_batch(
        1, status=OutboxStatus.SENDING, lease_expires_at=clock() + timedelta(minutes=4)
    )
    assert flush(clock=clock).sent == 2
    assert {row.status for row in reloaded(crashed)} == {OutboxStatus.SENT}
    assert reloaded(busy)[0].status == OutboxStatus.SENDING


@responses.activate
def test_no_request_starts_that_could_outlast_the_lease(clock: FakeClock, tracify_api: Any) -> None:
    def slow_rejection(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        clock.advance(10)
        return 400, {}, json.dumps({"status": False, "error": "no"})

    responses.add_callback(responses.POST, ENDPOINT, callback=slow_rejection)
    tracify_api(BATCH_SIZE=4, LEASE_SECONDS=15, TIMEOUT=1)
    events = OutboxRow.create_batch(4)
    result = flush(clock=clock)
    assert len(responses.calls) == 2  # the third would start 20 s into a 15 s lease
    assert (result.dead, result.released) == (0, 4)
    assert [(r.status, r.attempts) for r in reloaded(events)] == [("pending", 0)] * 4


@responses.activate
def test_a_lease_too_short_for_any_request_is_not_ok(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    tracify_api(LEASE_SECONDS=10, TIMEOUT=10)  # check tracify.E010 refuses it
    OutboxRow.create_batch(2)
    result = flush(clock=clock)
    assert (result.requests, result.released, result.outcome) == (0, 2, FlushState.ERROR)
    assert "LEASE_SECONDS" in FlushState.load().last_message


def test_settling_with_a_replaced_token_changes_nothing(clock: FakeClock) -> None:
    row = OutboxRow()
    first = outbox.claim_batch(10, now=clock(), lease_seconds=60)
    assert first is not None and [r.id for r in first.rows] == [row.id]
    assert outbox.claim_batch(10, now=clock(), lease_seconds=60) is None  # leased
    clock.advance(61)
    assert outbox.requeue_expired(now=clock()) == 1
    second = outbox.claim_batch(10, now=clock(), lease_seconds=60)
    assert second is not None and second.token != first.token
    assert outbox.mark_sent(first.token, [row.id], now=clock()) == 0
    assert outbox.release(first.token) == 0
    row.refresh_from_db()
    assert (row.status, row.claim_token) == (OutboxStatus.SENDING, second.token)
    assert outbox.mark_sent(second.token, [row.id], now=clock()) == 1


def test_a_locked_sqlite_database_means_nothing_claimed(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = OutboxRow.create_batch(2)

    def locked(*args: Any, **kwargs: Any) -> int:
        raise OperationalError("database is locked")

    monkeypatch.setattr(QuerySet, "update", locked)
    assert outbox.claim_batch(10, now=clock(), lease_seconds=60) is None
    monkeypatch.undo()
    assert [r.status for r in reloaded(events)] == ["pending", "pending"]


@responses.activate
def test_an_error_mid_batch_gives_the_rows_back(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, body=RuntimeError("bug"))
    events = OutboxRow.create_batch(2, attempts=1)
    with pytest.raises(RuntimeError):
        flush(clock=clock)
    assert [(r.status, r.attempts) for r in reloaded(events)] == [("pending", 1)] * 2
    assert FlushState.load().last_outcome == FlushState.ERROR


@responses.activate
def test_should_stop_lets_the_batch_in_flight_finish(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    OutboxRow.create_batch(6)
    asked: list[bool] = []

    def should_stop() -> bool:
        asked.append(True)
        return len(asked) > 1

    result = flush(clock=clock, should_stop=should_stop)
    assert (result.sent, result.left) == (2, 4)


@responses.activate
def test_progress_is_reported_after_each_batch(clock: FakeClock, tracify_api: Any) -> None:
    responses.post(ENDPOINT, json={"status": True})
    OutboxRow.create_batch(5)
    seen: list[int] = []
    flush(clock=clock, progress=lambda result: seen.append(result.sent))
    assert seen == [2, 4, 5]


@responses.activate
def test_a_dry_run_sends_and_changes_nothing(clock: FakeClock, tracify_api: Any) -> None:
    events = OutboxRow.create_batch(3)
    before = [(r.status, r.attempts, r.next_attempt_at) for r in reloaded(events)]
    result = flush(clock=clock, dry_run=True)
    assert (result.would_send, result.requests, result.sent) == (3, 2, 0)
    assert not responses.calls
    assert [(r.status, r.attempts, r.next_attempt_at) for r in reloaded(events)] == before
    assert not FlushState.objects.exists()
    bodies = [json.loads(request.body) for request in preview(clock=clock)]
    assert bodies == [{"events": [e.payload for e in events[:2]]}, {"events": [events[2].payload]}]


def test_retention_deletes_old_sent_and_given_up_rows(clock: FakeClock, tracify_api: Any) -> None:
    tracify_api(RETENTION_DAYS=30, DEAD_RETENTION_DAYS=90)
    long_ago, recently = clock() - timedelta(days=100), clock() - timedelta(days=10)
    old_sent = OutboxRow.create_batch(
        3, status=OutboxStatus.SENT, sent_at=clock() - timedelta(days=31)
    )
    kept = OutboxRow.create_batch(1, status=OutboxStatus.SENT, sent_at=recently)
    for status in (OutboxStatus.DEAD, OutboxStatus.DISCARDED, OutboxStatus.INVALID):
        old_sent += OutboxRow.create_batch(1, status=status, created_at=long_ago)
        kept += OutboxRow.create_batch(1, status=status, created_at=recently)
    kept += OutboxRow.create_batch(
        1, created_at=long_ago, next_attempt_at=clock() + timedelta(days=1)
    )
    deleted = outbox.delete_expired(
        now=clock(), retention_days=30, dead_retention_days=90, chunk_size=2
    )
    assert deleted == 6
    assert sorted(OutboxEvent.objects.values_list("id", flat=True)) == [r.id for r in kept]
    OutboxRow(status=OutboxStatus.SENT, sent_at=clock() - timedelta(days=40))
    assert flush(clock=clock).deleted == 1  # every pass applies retention


@responses.activate
def test_a_dead_row_is_kept_for_review_from_when_it_died(
    clock: FakeClock, tracify_api: Any
) -> None:
    tracify_api(DEAD_RETENTION_DAYS=90, MAX_AGE_SECONDS=7 * 86_400, BATCH_SIZE=1)
    responses.post(ENDPOINT, status=502)
    responses.post(ENDPOINT, json={"status": False, "error": "bad event"})
    # Waited out a long outage, then dies now: older than DEAD_RETENTION_DAYS by created_at.
    too_old, rejected = OutboxRow.create_batch(2, created_at=clock() - timedelta(days=100))
    assert flush(clock=clock).dead == 1
    assert flush(clock=clock).dead == 1
    assert [(r.status, r.given_up_at) for r in reloaded([too_old, rejected])] == [
        (OutboxStatus.DEAD, clock()),
        (OutboxStatus.DEAD, clock()),
    ]
    clock.advance(89 * 86_400)
    outbox.discard(OutboxEvent.objects.filter(id=rejected.id))
    assert flush(clock=clock).deleted == 0
    clock.advance(2 * 86_400)
    assert flush(clock=clock).deleted == 2


@responses.activate
def test_a_dry_run_does_not_list_an_oversize_event_as_sent(
    clock: FakeClock, tracify_api: Any
) -> None:
    tracify_api(MAX_BODY_BYTES=1024)
    small = OutboxRow(payload={"n": 1})
    huge = OutboxRow(payload={"pad": "x" * 2000})
    assert [request.event_ids for request in preview(clock=clock)] == [[small.id]]
    dry = flush(clock=clock, dry_run=True)
    assert (dry.would_send, dry.requests, dry.would_die) == (1, 1, 1)
    assert [event_id for event_id, _ in oversize(clock=clock)] == [huge.id]
    responses.post(ENDPOINT, json={"status": True})
    real = flush(clock=clock)
    assert (real.sent, real.requests, real.dead) == (dry.would_send, dry.requests, dry.would_die)


# --- every scenario against the real local receiver -------------------------------------------

SCENARIOS: dict[str, list[Any]] = {
    "ok": [],
    "status_false": ["status_false"],
    "http_400": ["http_400"],
    "http_401": ["http_401"],
    "http_429": [{"kind": "http_429", "retry_after": 3}],
    "http_500": ["http_500"],
    "hang": [{"kind": "hang", "seconds": 30}],
    "reset": ["reset"],
}


def drain(clock: FakeClock) -> list[FlushResult]:
    """Flush pass after pass, moving time past any backoff, until nothing is pending."""
    results = []
    for _ in range(20):
        results.append(flush(clock=clock, sleep=clock.sleep, rng=random.Random(7)))
        if not OutboxEvent.objects.filter(status=OutboxStatus.PENDING).exists():
            return results
        clock.advance(60)
    raise AssertionError(f"still pending after 20 passes: {results}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_receiver_scenario(
    scenario: str,
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    shop_request: Callable[..., Any],
    clock: FakeClock,
) -> None:
    receiver_settings(BATCH_SIZE=4, TIMEOUT=0.5, BACKOFF_BASE_SECONDS=1, BACKOFF_MAX_SECONDS=30)
    receiver.configure({"poison_marker": POISON})
    receiver.script(*SCENARIOS[scenario])
    paths = [f"/product/{n}" for n in range(9)]
    paths.insert(5, f"/product/{POISON}")
    tracked = {path: tracify.track_pageview(shop_request(path)) for path in paths}

    results = drain(clock)

    first = results[0]
    if scenario == "http_401":
        assert first.unauthorised and first.sent == 0
        assert not OutboxEvent.objects.filter(attempts__gt=1).exists()
    if scenario in ("hang", "reset"):
        assert first.unreachable and first.sent == 0
    if scenario == "http_429":
        assert clock.slept == [3.0]
    delivered = sorted(event["url"] for event in receiver.accepted_events())
    good = sorted(f"https://shop.example.com{path}" for path in paths if POISON not in path)
    assert delivered == good  # every good event, each exactly once
    assert receiver.duplicates() == {}
    poison = OutboxEvent.objects.get(pk=tracked[f"/product/{POISON}"].pk)  # type: ignore[union-attr]
    assert poison.status == OutboxStatus.DEAD
    assert "poison event" in poison.last_error
    assert not OutboxEvent.objects.filter(status=OutboxStatus.SENDING).exists()
    assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 9


def test_gzip_bodies_reach_the_receiver(
    receiver: Receiver, receiver_settings: Callable[..., None], shop_request: Callable[..., Any]
) -> None:
    receiver_settings(GZIP=True)
    for n in range(3):
        tracify.track_pageview(shop_request(f"/g/{n}"))
    assert flush().sent == 3
    (request,) = receiver.requests()
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["tracify-token"] == "***"  # recorded masked; it was accepted
    assert len(receiver.accepted_events()) == 3


def test_a_wrong_key_against_the_receiver_is_unauthorised(
    receiver: Receiver, receiver_settings: Callable[..., None], shop_request: Callable[..., Any]
) -> None:
    receiver_settings(API_KEY=RECEIVER_API_KEY + "-wrong")
    tracify.track_pageview(shop_request("/"))
    result = flush()
    assert result.unauthorised
    assert OutboxEvent.objects.get().status == OutboxStatus.PENDING
    assert receiver.accepted_events() == []
