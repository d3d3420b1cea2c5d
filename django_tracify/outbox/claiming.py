"""Claiming due rows for one flusher, by what the outbox database can do.

Every backend marks the rows `sending` under a fresh token and lease in one short
transaction; they differ in how the rows are picked so that concurrent flushers never take
the same one:

- SKIP LOCKED in an UPDATE's subquery, one statement (PostgreSQL);
- SKIP LOCKED on a SELECT of the ids in id order, then an UPDATE of those ids (MariaDB >= 10.6
  and MySQL >= 8.0.1, which refuse LIMIT in an IN subquery; without SKIP LOCKED, MariaDB < 10.6,
  flushers wait for each other's locks instead);
- candidate ids first, then locking those still due (Oracle: no LIMIT with FOR UPDATE);
- no row locks (SQLite): the statement runs under the database's single write lock, and
  "database is locked" means nothing claimed this time.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.db import OperationalError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from django_tracify.models import STATUS_ID_INDEX, OutboxEvent, OutboxStatus
from django_tracify.outbox.states import Claim, ClaimedRow, _rows, _sendable, due
from django_tracify.routers import outbox_database

# MySQL's "Deadlock found when trying to get lock": the claim is rolled back, try next pass.
_MYSQL_DEADLOCK = 1213


def claim_batch(
    size: int, *, now: datetime, lease_seconds: float, using: str | None = None
) -> Claim | None:
    """Mark up to `size` due rows (oldest id first) as sending under a fresh token and lease."""
    using = using or outbox_database()
    token = uuid.uuid4()
    lease = now + timedelta(seconds=lease_seconds)
    try:
        with transaction.atomic(using=using):
            claimed = _mark_due(connections[using], using, size, now, token, lease)
    except OperationalError as err:
        if not _busy(err):
            raise
        return None
    if not claimed:
        return None
    mine = _rows(using).filter(status=OutboxStatus.SENDING, claim_token=token).order_by("id")
    rows = [ClaimedRow(*values) for values in _sendable(mine)]
    return Claim(token, rows, lease) if rows else None


def can_claim_concurrently(connection: BaseDatabaseWrapper) -> bool:
    """Whether flushers on several connections can claim at once without taking a row twice."""
    return bool(connection.features.has_select_for_update)


def _mark_due(
    connection: BaseDatabaseWrapper,
    using: str,
    size: int,
    now: datetime,
    token: uuid.UUID,
    lease: datetime,
) -> int:
    features = connection.features
    picked = _rows(using).filter(due(now)).order_by("id").values("id")
    if not features.has_select_for_update:
        return _mark(_rows(using).filter(id__in=picked[:size]), token, lease)
    locked = picked.select_for_update(skip_locked=features.has_select_for_update_skip_locked)
    if not features.supports_select_for_update_with_limit:
        # Some of the candidates may be locked by another flusher: pick a few more than asked.
        candidates = list(picked.values_list("id", flat=True)[: size * 2])
        ids = list(locked.filter(id__in=candidates).values_list("id", flat=True))[:size]
    elif features.allow_sliced_subqueries_with_in:
        # A subquery, not a list of ids: no id list to build, send and parse, twice.
        return _mark(_rows(using).filter(id__in=locked[:size]), token, lease)
    else:
        ids = _mysql_locked_ids(connection, size, now)
    return _mark(_rows(using).filter(id__in=ids), token, lease) if ids else 0


def _mysql_locked_ids(connection: BaseDatabaseWrapper, size: int, now: datetime) -> list[int]:
    # InnoDB locks every row it reads before the LIMIT: a plan that sorts (e.g. through
    # tracify_status_due) would lock all due rows and leave the other flushers nothing. Through
    # (status, id) the rows come in id order and the scan stops after `size`.
    quote = connection.ops.quote_name
    skip = " SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"SELECT {quote('id')} FROM {quote(OutboxEvent._meta.db_table)} "  # noqa: S608
        f"FORCE INDEX ({quote(STATUS_ID_INDEX)}) "
        f"WHERE {quote('status')} = %s AND {quote('next_attempt_at')} <= %s "
        f"ORDER BY {quote('id')} LIMIT %s FOR UPDATE{skip}"
    )
    when = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(sql, (OutboxStatus.PENDING, when, size))
        return [row_id for (row_id,) in cursor.fetchall()]


def _mark(rows: QuerySet[OutboxEvent], token: uuid.UUID, lease: datetime) -> int:
    return rows.update(status=OutboxStatus.SENDING, claim_token=token, lease_expires_at=lease)


def _busy(err: OperationalError) -> bool:
    code: Any = err.args[0] if err.args else None
    return code == _MYSQL_DEADLOCK or "locked" in str(err)
