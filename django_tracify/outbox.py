"""The outbox rows: enqueue, claim, settle and retention. The only module that changes them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from django_tracify.events import Event
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database

MAX_ERROR_LENGTH = 2000
# The columns a new row sets; the others start NULL. Kept in step with OutboxEvent's defaults.
_INSERTED = (
    "event_type",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "dedup_key",
    "last_error",
    "created_at",
)
_RETURNING_VENDORS = ("postgresql", "sqlite")
_FIELDS = tuple(field.attname for field in OutboxEvent._meta.concrete_fields)
# What a new row holds in the fields an insert does not set.
_UNSET: dict[str, Any] = {
    "attempts": 0,
    "last_http_status": None,
    "sent_at": None,
    "claim_token": None,
    "lease_expires_at": None,
}


_insert_sql: dict[tuple[str, bool], str] = {}


def _insert_statement(connection: BaseDatabaseWrapper, returning: bool) -> str:
    sql = _insert_sql.get((connection.vendor, returning))
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(column) for column in _INSERTED)
        placeholders = ", ".join(
            # PostgreSQL: the payload arrives as JSON text, dumped once by us, cast by the server.
            "%s::jsonb" if column == "payload" and connection.vendor == "postgresql" else "%s"
            for column in _INSERTED
        )
        table = quote(OutboxEvent._meta.db_table)
        # Only our own quoted table and column names are interpolated; values are parameters.
        sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608
        if returning:
            sql += f" RETURNING {quote('id')}"
        _insert_sql[(connection.vendor, returning)] = sql
    return sql


def _insert_cursor(connection: BaseDatabaseWrapper) -> Any:
    """A cursor for the one INSERT. PostgreSQL on psycopg 3: the values are bound by the
    server instead of quoted into the SQL by the client (~35 us less CPU per row); no named
    prepared statement, so PgBouncer's transaction pooling still works."""
    server_binding = _server_binding_cursor_class(connection)
    if server_binding is None:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        # What connection.cursor() does, with Django's own server-binding cursor class:
        # execute wrappers and the query log (DEBUG, debug toolbar) still see the INSERT.
        cursor = server_binding(connection.connection)
        return connection._prepare_cursor(cursor)  # type: ignore[attr-defined]


def _server_binding_cursor_class(connection: BaseDatabaseWrapper) -> Any:
    """Django's server-binding cursor class, when the connection's cursors bind client-side."""
    if connection.vendor != "postgresql":
        return None
    if connection.settings_dict["OPTIONS"].get("server_side_binding"):
        return None  # connection.cursor() binds server-side already
    if not hasattr(connection, "_prepare_cursor"):
        return None  # a Django without it: the plain cursor still works
    from django.db.backends.postgresql import base

    return getattr(base, "ServerBindingCursor", None)  # None with psycopg2


def _execute_insert(using: str, fields: dict[str, Any], returning: bool) -> dict[str, Any] | None:
    connection = connections[using]
    if connection.vendor not in _RETURNING_VENDORS or not (
        connection.features.can_return_columns_from_insert
    ):
        row = OutboxEvent.objects.using(using).create(**fields)
        return {name: getattr(row, name) for name in _FIELDS}
    # One statement, its values adapted once: Model.create() costs the worker ~4x the CPU
    # of the INSERT itself (field preparation, SQL compilation, model signals).
    when = connection.ops.adapt_datetimefield_value(fields["created_at"])
    with _insert_cursor(connection) as cursor:
        cursor.execute(
            _insert_statement(connection, returning),
            (
                fields["event_type"],
                json.dumps(fields["payload"]),
                fields["status"],
                0,
                when,
                fields["dedup_key"],
                fields["last_error"],
                when,
            ),
        )
        if not returning:
            return None
        (row_id,) = cursor.fetchone()
    return {**_UNSET, **fields, "id": row_id, "next_attempt_at": fields["created_at"]}


def _as_row(using: str, values: dict[str, Any] | None) -> OutboxEvent:
    assert values is not None, "inserted with returning=False"
    # Every field, positionally: Model.__init__'s fast path, half the CPU of keywords.
    return OutboxEvent.from_db(using, _FIELDS, tuple(values[name] for name in _FIELDS))


def _insert(
    using: str,
    event_type: str,
    payload: dict[str, Any],
    *,
    dedup_key: str | None = None,
    status: str = OutboxStatus.PENDING,
    last_error: str = "",
    returning: bool = True,
) -> dict[str, Any] | None:
    """Insert one row; returns what it holds, id included (None if not `returning`)."""
    fields = {
        "event_type": event_type,
        "payload": payload,
        "status": status,
        "dedup_key": dedup_key,
        "last_error": last_error,
        "created_at": timezone.now(),
    }
    if not transaction.get_connection(using).in_atomic_block:
        # Autocommit: a failed insert cannot poison anything, and BEGIN/COMMIT would cost
        # two more round trips on every pageview.
        return _execute_insert(using, fields, returning)
    # Inside the shop's transaction: a savepoint, so a failed insert rolls back only itself.
    with transaction.atomic(using=using):
        return _execute_insert(using, fields, returning)


def enqueue(event: Event) -> OutboxEvent:
    """Store an event in the caller's transaction; a repeated dedup key keeps the first row."""
    return store(event)[0]


def store(event: Event) -> tuple[OutboxEvent, bool]:
    """Like enqueue(), and whether the row is new (False: the dedup key's first row).

    Rows are written with one INSERT, not Model.save(): no pre_save/post_save signals, as
    with bulk_create().
    """
    using = outbox_database()
    if event.dedup_key:
        existing = OutboxEvent.objects.using(using).filter(dedup_key=event.dedup_key).first()
        if existing is not None:
            return existing, False
    try:
        values = _insert(using, event.event_type, event.payload, dedup_key=event.dedup_key)
    except IntegrityError:
        if not event.dedup_key:
            raise
        return OutboxEvent.objects.using(using).get(dedup_key=event.dedup_key), False
    return _as_row(using, values), True


def add(event: Event) -> bool:
    """Like store(), without building the row: whether a new row was stored.

    For callers that have no use for the row (the middleware's pageview).
    """
    if event.dedup_key:
        return store(event)[1]
    _insert(outbox_database(), event.event_type, event.payload, returning=False)
    return True


def record_invalid(event_type: str, problem: str) -> OutboxEvent:
    """Keep an admin-visible row for a call whose input was invalid; it is never sent."""
    using = outbox_database()
    values = _insert(
        using,
        event_type,
        {},
        status=OutboxStatus.INVALID,
        last_error=problem[:MAX_ERROR_LENGTH],
    )
    return _as_row(using, values)


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


# --- delivery: claim, settle, requeue, retention ---------------------------------------------


class ClaimedRow(NamedTuple):
    id: int
    attempts: int
    payload_json: str


@dataclass(frozen=True)
class Claim:
    """Rows this flusher owns until `lease_expires_at`; settling checks `token`."""

    token: uuid.UUID
    rows: list[ClaimedRow]
    lease_expires_at: datetime


def _rows(using: str | None) -> QuerySet[OutboxEvent]:
    return OutboxEvent.objects.using(using or outbox_database())


def due(now: datetime) -> Q:
    return Q(status=OutboxStatus.PENDING, next_attempt_at__lte=now)


def claim_batch(
    size: int, *, now: datetime, lease_seconds: float, using: str | None = None
) -> Claim | None:
    """Mark up to `size` due rows (oldest id first) as sending under a fresh token and lease.

    One UPDATE whose subquery picks the rows, in one short transaction. PostgreSQL: the
    subquery selects FOR UPDATE SKIP LOCKED, so concurrent flushers take different rows without
    waiting. SQLite (no SKIP LOCKED) runs the statement under its single write lock; "database
    is locked" there means nothing claimed.
    """
    using = using or outbox_database()
    token = uuid.uuid4()
    lease = now + timedelta(seconds=lease_seconds)
    picked = _rows(using).filter(due(now)).order_by("id").values("id")
    try:
        with transaction.atomic(using=using):
            if connections[using].vendor == "postgresql":
                picked = picked.select_for_update(skip_locked=True)
            # A subquery, not a list of ids: no id list to build, send and parse, twice.
            claimed = (
                _rows(using)
                .filter(id__in=picked[:size])
                .update(status=OutboxStatus.SENDING, claim_token=token, lease_expires_at=lease)
            )
    except OperationalError as err:
        if "locked" not in str(err):
            raise
        return None
    if not claimed:
        return None
    mine = _rows(using).filter(status=OutboxStatus.SENDING, claim_token=token).order_by("id")
    rows = [ClaimedRow(*values) for values in _sendable(mine)]
    return Claim(token, rows, lease) if rows else None


def _sendable(rows: QuerySet[OutboxEvent]) -> QuerySet[OutboxEvent, tuple[int, int, str]]:
    # The payload as the database's JSON text: sent as it is, never parsed and dumped again.
    return rows.annotate(payload_json=Cast("payload", TextField())).values_list(
        "id", "attempts", "payload_json"
    )


def requeue_expired(*, now: datetime, using: str | None = None) -> int:
    """Make rows whose lease ran out (their flusher died) pending again; attempts unchanged."""
    return (
        _rows(using)
        .filter(status=OutboxStatus.SENDING, lease_expires_at__lt=now)
        .update(status=OutboxStatus.PENDING, claim_token=None, lease_expires_at=None)
    )


def _claimed(token: uuid.UUID, ids: Iterable[int], using: str | None) -> QuerySet[OutboxEvent]:
    # A flusher that outlived its lease finds its token replaced and changes nothing.
    return _rows(using).filter(claim_token=token, status=OutboxStatus.SENDING, id__in=list(ids))


_UNCLAIMED: dict[str, Any] = {"claim_token": None, "lease_expires_at": None}


def mark_sent(
    token: uuid.UUID, ids: Iterable[int], *, now: datetime, using: str | None = None
) -> int:
    return _claimed(token, ids, using).update(
        status=OutboxStatus.SENT, sent_at=now, attempts=F("attempts") + 1, **_UNCLAIMED
    )


def mark_dead(
    token: uuid.UUID,
    ids: Iterable[int],
    *,
    error: str,
    http_status: int | None,
    using: str | None = None,
) -> int:
    return _claimed(token, ids, using).update(
        status=OutboxStatus.DEAD,
        attempts=F("attempts") + 1,
        last_error=error[:MAX_ERROR_LENGTH],
        last_http_status=http_status,
        **_UNCLAIMED,
    )


def mark_retry(
    token: uuid.UUID,
    ids: Iterable[int],
    *,
    next_attempt_at: datetime,
    error: str,
    http_status: int | None,
    now: datetime,
    max_attempts: int,
    max_age_seconds: float,
    using: str | None = None,
) -> tuple[int, int]:
    """Back to pending until `next_attempt_at`, or dead once out of attempts or too old.

    Returns (retried, dead).
    """
    ids = list(ids)
    failed = {
        "attempts": F("attempts") + 1,
        "last_error": error[:MAX_ERROR_LENGTH],
        "last_http_status": http_status,
        **_UNCLAIMED,
    }
    exhausted = Q(attempts__gte=max_attempts - 1) | Q(
        created_at__lt=now - timedelta(seconds=max_age_seconds)
    )
    using = using or outbox_database()
    with transaction.atomic(using=using):
        dead = (
            _claimed(token, ids, using).filter(exhausted).update(status=OutboxStatus.DEAD, **failed)
        )
        retried = _claimed(token, ids, using).update(
            status=OutboxStatus.PENDING, next_attempt_at=next_attempt_at, **failed
        )
    return retried, dead


def release(
    token: uuid.UUID,
    ids: Iterable[int] | None = None,
    *,
    error: str | None = None,
    http_status: int | None = None,
    using: str | None = None,
) -> int:
    """Give claimed rows back as they were: pending, same attempts and due time.

    With `error`, the rows also show why (e.g. the API key was refused).
    """
    rows = _rows(using).filter(claim_token=token, status=OutboxStatus.SENDING)
    if ids is not None:
        rows = rows.filter(id__in=list(ids))
    values: dict[str, Any] = {"status": OutboxStatus.PENDING, **_UNCLAIMED}
    if error is not None:
        values.update(last_error=error[:MAX_ERROR_LENGTH], last_http_status=http_status)
    return rows.update(**values)


def count_due(*, now: datetime, using: str | None = None) -> int:
    return _rows(using).filter(due(now)).count()


def iter_due(*, now: datetime, limit: int | None, using: str | None = None) -> Iterator[ClaimedRow]:
    """Due rows oldest first, read in chunks, changing nothing (for dry runs)."""
    rows = _sendable(_rows(using).filter(due(now)).order_by("id"))
    if limit is not None:
        rows = rows[:limit]
    return (ClaimedRow(*values) for values in rows.iterator(chunk_size=RETENTION_CHUNK))


RETENTION_CHUNK = 1000


def delete_expired(
    *,
    now: datetime,
    retention_days: float,
    dead_retention_days: float,
    chunk_size: int = RETENTION_CHUNK,
    using: str | None = None,
) -> int:
    """Delete sent rows past retention and dead/discarded/invalid rows past theirs.

    In id-ordered chunks, each its own short statement, so a large first run never holds a
    long lock or a huge transaction.
    """
    sent = _rows(using).filter(
        status=OutboxStatus.SENT, sent_at__lt=now - timedelta(days=retention_days)
    )
    given_up = _rows(using).filter(
        status__in=(OutboxStatus.DEAD, OutboxStatus.DISCARDED, OutboxStatus.INVALID),
        created_at__lt=now - timedelta(days=dead_retention_days),
    )
    return _delete_in_chunks(sent, chunk_size) + _delete_in_chunks(given_up, chunk_size)


def _delete_in_chunks(rows: QuerySet[OutboxEvent], chunk_size: int) -> int:
    deleted = 0
    while True:
        ids = list(rows.order_by("id").values_list("id", flat=True)[:chunk_size])
        if not ids:
            return deleted
        count, _ = rows.filter(id__in=ids).delete()
        deleted += count
        if len(ids) < chunk_size:
            return deleted
