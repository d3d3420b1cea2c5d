"""Flushing the outbox: claim due rows, send them, settle each row (sent, retry later, dead)."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import InterfaceError, OperationalError, connections

from django_tracify import outbox, signals
from django_tracify.clock import as_utc, utc_now
from django_tracify.conf import settings
from django_tracify.delivery.backoff import retry_delay
from django_tracify.delivery.batching import (
    Clock,
    Item,
    OversizeEvent,
    PlannedRequest,
    oversize,
    oversize_alone,
    plan,
    preview,
    split_by_size,
)
from django_tracify.delivery.client import Answer, Outcome, TracifyClient
from django_tracify.delivery.signals import announce, send
from django_tracify.errors import MAX_STORED_ERROR_LENGTH
from django_tracify.models import FlushOutcome, FlushState, OutboxStatus
from django_tracify.outbox.states import waiting_for_retry
from django_tracify.routers import outbox_database

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_MAX_PAUSE_SECONDS = 60.0
MIN_PAUSE_SECONDS = 1.0

# The dry-run plan lives in batching; these names stay importable from here.
__all__ = [
    "FlushResult",
    "OversizeEvent",
    "PlannedRequest",
    "flush",
    "oversize",
    "plan",
    "preview",
    "split_by_size",
]


@dataclass
class FlushResult:
    """What one flush pass did. `left` counts rows still due when it ended; `waiting_retry`
    the rows that already failed and wait for another attempt (`retry_error`: the latest's)."""

    sent: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    requests: int = 0
    answered: int = 0
    deleted: int = 0
    left: int = 0
    would_send: int = 0
    would_die: int = 0
    waiting_retry: int = 0
    retry_error: str = ""
    paused_seconds: float = 0.0
    unauthorised: bool = False
    dry_run: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def unreachable(self) -> bool:
        """Requests were made and not one got an HTTP answer."""
        return self.requests > 0 and self.answered == 0

    @property
    def outcome(self) -> FlushOutcome:
        if self.unauthorised:
            return FlushOutcome.UNAUTHORISED
        if self.unreachable:
            return FlushOutcome.UNREACHABLE
        if self.waiting_retry:
            # Also when this pass found nothing due: its events wait out a backoff.
            return FlushOutcome.FAILING
        if self.errors and not self.sent:
            return FlushOutcome.ERROR
        return FlushOutcome.OK

    def as_task_result(self) -> dict[str, Any]:
        """What a task returns (Celery or django.tasks): JSON-serialisable counts and outcome."""
        return {
            "sent": self.sent,
            "retried": self.retried,
            "dead": self.dead,
            "left": self.left,
            "outcome": self.outcome,
        }

    def summary(self) -> str:
        if self.dry_run:
            text = f"dry run: would send {self.would_send} in {self.requests} requests"
            if self.would_die:
                text += f", mark {self.would_die} dead unsent (over MAX_BODY_BYTES)"
            return text
        text = f"sent {self.sent}, retried {self.retried}, dead {self.dead}, left {self.left}"
        if self.unauthorised:
            text += ": Tracify refused the API key, check TRACIFY['API_KEY']"
        elif self.unreachable:
            text += ": Tracify unreachable"
        if self.errors:
            text += f" (last error: {self.errors[-1]})"
        elif self.waiting_retry:
            text += (
                f": {self.waiting_retry} events wait for a retry after failed attempts "
                f"(last error: {self.retry_error})"
            )
        return text


def flush(
    *,
    batch_size: int | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    clock: Clock = utc_now,
    sleep: Callable[[float], Any] = time.sleep,
    rng: random.Random | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[FlushResult], Any] | None = None,
    max_pause_seconds: float = DEFAULT_MAX_PAUSE_SECONDS,
    client: TracifyClient | None = None,
) -> FlushResult:
    """One pass: deliver due outbox rows in batches until none is due (or `limit` rows).

    Safe to run in many processes at once on PostgreSQL. Retry-After pauses the pass for at
    most `max_pause_seconds` in all (`sleep` is called, e.g. a threading.Event's wait); any
    other retryable failure ends the pass, leaving the rest for the next one. `should_stop`
    is asked between batches: the batch in flight is always settled first. With `dry_run`,
    nothing is sent or changed (see `preview()` for the requests it would make).
    """
    if dry_run:
        result = FlushResult(dry_run=True)
        for step in plan(batch_size=batch_size, limit=limit, clock=clock):
            if isinstance(step, OversizeEvent):
                result.would_die += 1
            else:
                result.requests += 1
                result.would_send += len(step.event_ids)
        return result
    run = _Pass(
        batch_size=batch_size or settings.BATCH_SIZE,
        limit=limit,
        clock=clock,
        sleep=sleep,
        rng=rng or random.Random(),
        should_stop=should_stop or (lambda: False),
        progress=progress,
        max_pause_seconds=max_pause_seconds,
    )
    try:
        # Aware for the client: a Retry-After HTTP date is compared with it (naive without USE_TZ).
        run.client = client or TracifyClient.from_settings(clock=lambda: as_utc(clock()))
        try:
            run.deliver()
        finally:
            if client is None:
                run.client.close()
        run.clean_up()
    except Exception as err:
        run.result.errors.append(f"{type(err).__name__}: {err}")
        try:
            _record_state(run.result, clock(), FlushOutcome.ERROR)
        except Exception:
            logger.exception("tracify: could not record the flush state")
        send(signals.flush_finished, result=run.result, outcome=FlushOutcome.ERROR, using=run.using)
        raise
    _record_state(run.result, clock(), run.result.outcome)
    _log_result(run.result)
    send(signals.flush_finished, result=run.result, outcome=run.result.outcome, using=run.using)
    return run.result


class _Pass:
    client: TracifyClient
    lease_deadline: datetime

    def __init__(
        self,
        *,
        batch_size: int,
        limit: int | None,
        clock: Clock,
        sleep: Callable[[float], Any],
        rng: random.Random,
        should_stop: Callable[[], bool],
        progress: Callable[[FlushResult], Any] | None,
        max_pause_seconds: float,
    ) -> None:
        self.batch_size = batch_size
        self.limit = limit
        self.clock = clock
        self.sleep = sleep
        self.rng = rng
        self.should_stop = should_stop
        self.progress = progress
        self.pause_budget = max_pause_seconds
        self.using = outbox_database()
        self.max_body = settings.MAX_BODY_BYTES
        self.result = FlushResult()
        self.stopped = False

    def deliver(self) -> None:
        outbox.requeue_expired(now=self.clock(), using=self.using)
        claimed = 0
        while not self.stopped and not self.should_stop():
            size = (
                self.batch_size
                if self.limit is None
                else min(self.batch_size, self.limit - claimed)
            )
            if size <= 0:
                return
            claim = self._db(
                outbox.claim_batch,
                size,
                now=self.clock(),
                lease_seconds=settings.LEASE_SECONDS,
                using=self.using,
            )
            if claim is None:
                return
            claimed += len(claim.rows)
            try:
                self._deliver_claim(claim)
            except BaseException:
                # Whatever was not settled goes back as it was, not left waiting for the lease.
                self._db(outbox.release, claim.token, using=self.using)
                raise
            if self.progress is not None:
                self.progress(self.result)

    def _db(self, operation: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run an outbox operation; once more on a new connection if the old one broke.

        Claims and settlements follow network waits (a slow answer, a Retry-After pause),
        long enough for a database restart, a failover or an idle timeout to drop the
        connection; settling on a new one keeps the answer instead of losing it.
        """
        try:
            return operation(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connection = connections[self.using]
            if connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("tracify: the database connection broke; reconnecting once")
            connection.close()
            return operation(*args, **kwargs)

    def clean_up(self) -> None:
        now = self.clock()
        self.result.deleted = outbox.delete_expired(
            now=now,
            retention_days=settings.RETENTION_DAYS,
            dead_retention_days=settings.DEAD_RETENTION_DAYS,
            using=self.using,
        )
        self.result.left = outbox.count_due(now=now, using=self.using)
        retrying = waiting_for_retry(self.using)
        self.result.waiting_retry = retrying.count()
        if self.result.waiting_retry:
            latest = retrying.order_by("-next_attempt_at").values_list("last_error", flat=True)
            self.result.retry_error = latest.first() or ""

    def _deliver_claim(self, claim: outbox.Claim) -> None:
        # A request still running when the lease ends could race another flusher's resend.
        self.lease_deadline = claim.lease_expires_at - timedelta(seconds=settings.TIMEOUT)
        items = [(row, row.payload_json.encode()) for row in claim.rows]
        for chunk in split_by_size(items, self.max_body):
            size = oversize_alone(chunk, self.max_body)
            if size is not None:
                error = f"the event alone is {size} bytes, over TRACIFY['MAX_BODY_BYTES']"
                self._dead(claim.token, chunk, error, None)
            else:
                self._send(claim.token, chunk)

    def _send(self, token: uuid.UUID, items: list[Item]) -> None:
        ids = [row.id for row, _ in items]
        if not self.stopped and self.clock() >= self.lease_deadline:
            logger.warning("tracify: the lease ran out mid-batch; the rest waits for the next pass")
            self.result.errors.append(
                "the lease ran out before the batch was sent: LEASE_SECONDS leaves too little "
                "time for requests of TIMEOUT seconds"
            )
            self.stopped = True
        if self.stopped:
            self.result.released += self._db(outbox.release, token, ids, using=self.using)
            return
        answer = self.client.send_encoded([data for _, data in items])
        self.result.requests += 1
        self.result.answered += answer.answered
        if answer.outcome is Outcome.ACCEPTED:
            now = self.clock()
            sent = self._db(outbox.mark_sent, token, ids, now=now, using=self.using)
            self.result.sent += sent
            marks = {"status": OutboxStatus.SENT, "sent_at": now}
            announce(signals.events_sent, _rows_of(items), sent, using=self.using, marks=marks)
        elif answer.outcome is Outcome.REJECTED and len(items) > 1:
            # Halve until the bad events are alone, so they never hold the good ones back.
            middle = len(items) // 2
            self._send(token, items[:middle])
            self._send(token, items[middle:])
        elif answer.outcome is Outcome.REJECTED:
            self._dead(token, items, answer.error, answer.http_status)
        elif answer.outcome is Outcome.UNAUTHORISED:
            self._unauthorised(token, ids, answer)
        else:
            self._retry(token, items, answer)

    def _dead(self, token: uuid.UUID, items: list[Item], error: str, status: int | None) -> None:
        row = items[0][0]
        dead = self._db(
            outbox.mark_dead,
            token,
            [row.id],
            error=error,
            http_status=status,
            now=self.clock(),
            using=self.using,
        )
        self.result.dead += dead
        if dead:
            logger.warning("tracify: event #%s rejected, now dead: %s", row.id, error)
        outcome = {"error": error, "http_status": status}
        announce(signals.events_dead, [row], dead, using=self.using, marks={}, **outcome)

    def _unauthorised(self, token: uuid.UUID, ids: list[int], answer: Answer) -> None:
        self.stopped = True
        self.result.unauthorised = True
        self.result.errors.append(answer.error)
        self.result.released += self._db(
            outbox.release,
            token,
            ids,
            error=answer.error,
            http_status=answer.http_status,
            using=self.using,
        )
        logger.error(
            "tracify: Tracify refused the API key (%s). Nothing was sent and no event lost: "
            "the events wait in the outbox. Check TRACIFY['API_KEY'].",
            answer.error,
        )

    def _retry(self, token: uuid.UUID, items: list[Item], answer: Answer) -> None:
        self.result.errors.append(answer.error)
        now = self.clock()
        by_attempts: dict[int, list[outbox.ClaimedRow]] = defaultdict(list)
        for row, _ in items:
            by_attempts[row.attempts].append(row)
        for attempts, group in by_attempts.items():
            ids = [row.id for row in group]
            delay = retry_delay(
                attempts + 1,
                base=settings.BACKOFF_BASE_SECONDS,
                cap=settings.BACKOFF_MAX_SECONDS,
                rng=self.rng,
                retry_after=answer.retry_after,
            )
            next_attempt_at = now + timedelta(seconds=delay)
            retried, dead = self._db(
                outbox.mark_retry,
                token,
                ids,
                next_attempt_at=next_attempt_at,
                error=answer.error,
                http_status=answer.http_status,
                now=now,
                max_attempts=settings.MAX_ATTEMPTS,
                max_age_seconds=settings.MAX_AGE_SECONDS,
                using=self.using,
            )
            self.result.retried += retried
            self.result.dead += dead
            outcome = {"error": answer.error, "http_status": answer.http_status}
            pending = {"status": OutboxStatus.PENDING}
            announce(
                signals.events_retried,
                group,
                retried,
                using=self.using,
                marks=pending,
                next_attempt_at=next_attempt_at,
                **outcome,
            )
            given_up = {"status": OutboxStatus.DEAD, "given_up_at": now}
            announce(signals.events_dead, group, dead, using=self.using, marks=given_up, **outcome)
            if dead:
                logger.warning(
                    "tracify: %d events out of attempts or too old, now dead: %s",
                    dead,
                    answer.error,
                )
        logger.warning("tracify: %d events to retry later: %s", len(items), answer.error)
        # At least a second, so a "Retry-After: 0" loop still runs out of pause budget.
        pause = None if answer.retry_after is None else max(answer.retry_after, MIN_PAUSE_SECONDS)
        if pause is not None and pause <= self.pause_budget:
            self.pause_budget -= pause
            self.result.paused_seconds += pause
            self.sleep(pause)
        else:
            # A failing or overloaded Tracify: try the rest in the next pass, not now.
            self.stopped = True


def _rows_of(items: list[Item]) -> list[outbox.ClaimedRow]:
    return [row for row, _ in items]


def _record_state(result: FlushResult, now: datetime, outcome: str) -> None:
    values: dict[str, Any] = {
        "last_flush_at": now,
        "last_outcome": outcome,
        "last_message": result.summary()[:MAX_STORED_ERROR_LENGTH],
    }
    if result.sent:
        values["last_success_at"] = now
    using = outbox_database()
    if not FlushState.row(using).update(**values):
        FlushState.load(using)
        FlushState.row(using).update(**values)


def _log_result(result: FlushResult) -> None:
    if result.requests or result.deleted:
        logger.info("tracify: flush: %s; %d old rows deleted", result.summary(), result.deleted)
