"""New outbox rows: enqueue(), store(), add() and record_invalid(), one INSERT each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from django_tracify.clock import utc_now
from django_tracify.errors import MAX_STORED_ERROR_LENGTH
from django_tracify.events.builders import Event
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database

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
# Where the one-statement insert runs; elsewhere Model.create(). The new id comes back by
# RETURNING where the backend has it, by the cursor's lastrowid on MySQL.
_FAST_INSERT_VENDORS = ("postgresql", "sqlite", "mysql")
_FIELDS = tuple(field.attname for field in OutboxEvent._meta.concrete_fields)
# What a new row holds in the fields an insert does not set.
_UNSET: dict[str, Any] = {
    "attempts": 0,
    "last_http_status": None,
    "sent_at": None,
    "given_up_at": None,
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
    if connection.vendor not in _FAST_INSERT_VENDORS:
        row = OutboxEvent.objects.using(using).create(**fields)
        return {name: getattr(row, name) for name in _FIELDS}
    returning_sql = returning and connection.features.can_return_columns_from_insert
    # One statement, its values adapted once: Model.create() costs the worker ~4x the CPU
    # of the INSERT itself (field preparation, SQL compilation, model signals).
    when = connection.ops.adapt_datetimefield_value(fields["created_at"])
    with _insert_cursor(connection) as cursor:
        cursor.execute(
            _insert_statement(connection, returning_sql),
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
        (row_id,) = cursor.fetchone() if returning_sql else (cursor.lastrowid,)
    return {**_UNSET, **fields, "id": row_id, "next_attempt_at": fields["created_at"]}


def _as_row(using: str, values: dict[str, Any] | None) -> OutboxEvent:
    assert values is not None, "inserted with returning=False"
    # Every field, positionally: Model.__init__'s fast path, half the CPU of keywords.
    return OutboxEvent.from_db(using, _FIELDS, tuple(values[name] for name in _FIELDS))


def _new_fields(
    event_type: str,
    payload: dict[str, Any],
    *,
    dedup_key: str | None = None,
    status: str = OutboxStatus.PENDING,
    last_error: str = "",
) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "payload": payload,
        "status": status,
        "dedup_key": dedup_key,
        "last_error": last_error,
        "created_at": utc_now(),
    }


@contextmanager
def _own_savepoint(using: str) -> Iterator[None]:
    """Inside the shop's transaction, a savepoint: a failed statement (a lock or statement
    timeout, a unique-key clash) rolls back only itself, and the shop's transaction goes on."""
    if not transaction.get_connection(using).in_atomic_block:
        # Autocommit: a failed statement cannot poison anything, and BEGIN/COMMIT would cost
        # two more round trips on every pageview.
        yield
        return
    with transaction.atomic(using=using):
        yield


def _insert(using: str, fields: dict[str, Any], *, returning: bool = True) -> dict[str, Any] | None:
    """Insert one row; returns what it holds, id included (None if not `returning`)."""
    with _own_savepoint(using):
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
    fields = _new_fields(event.event_type, event.payload, dedup_key=event.dedup_key)
    if not event.dedup_key:
        return _as_row(using, _insert(using, fields)), True
    rows = OutboxEvent.objects.using(using)
    try:
        # The lookup shares the insert's savepoint: no statement of ours runs bare in the
        # shop's transaction, where a failure would abort it (PostgreSQL).
        with _own_savepoint(using):
            existing = rows.filter(dedup_key=event.dedup_key).first()
            if existing is not None:
                return existing, False
            values = _execute_insert(using, fields, True)
    except IntegrityError:
        # Stored by another request since the lookup.
        with _own_savepoint(using):
            return rows.get(dedup_key=event.dedup_key), False
    return _as_row(using, values), True


def add(event: Event) -> bool:
    """Like store(), without building the row: whether a new row was stored.

    For callers that have no use for the row (the middleware's pageview).
    """
    if event.dedup_key:
        return store(event)[1]
    _insert(outbox_database(), _new_fields(event.event_type, event.payload), returning=False)
    return True


def record_invalid(
    event_type: str, problem: str, payload: dict[str, Any] | None = None
) -> OutboxEvent:
    """Keep an admin-visible row for a call whose input was invalid; it is never sent.

    `payload`: what is known of the call for the admin (its URL, an order id); no personal data.
    """
    using = outbox_database()
    fields = _new_fields(
        event_type,
        payload or {},
        status=OutboxStatus.INVALID,
        last_error=problem[:MAX_STORED_ERROR_LENGTH],
    )
    values = _insert(using, fields)
    return _as_row(using, values)
