"""Counts of events that went wrong while being captured, by kind, for operators.

record(kind) costs no query: it counts in this process's memory, because the database may be
the very thing that failed. The counts are added to the CaptureCount rows after this process's
next successful outbox write (at most every SAVE_INTERVAL seconds, once that write committed),
where tracify_status and the admin summary read them. The models are imported late: the
public API imports this module before Django's apps are ready.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import F

from django_tracify.clock import utc_now

logger = logging.getLogger(__name__)

OUTBOX_UNWRITABLE = "outbox_unwritable"
NO_CLIENT_IP = "no_client_ip"

# kind -> (label, what the count means); the order tracify_status and the admin show them in.
KINDS: dict[str, tuple[str, str]] = {
    OUTBOX_UNWRITABLE: ("lost at capture", "events lost: the outbox could not be written"),
    NO_CLIENT_IP: ("no client IP", "events lost: the visitor's IP address was unknown"),
}

SAVE_INTERVAL = 10.0

clock = time.monotonic
_lock = threading.Lock()
_unsaved: Counter[str] = Counter()
_last_save = -math.inf


def record(kind: str) -> None:
    """Count one event of `kind` (a key of KINDS) in this process."""
    with _lock:
        _unsaved[kind] += 1


def unsaved() -> dict[str, int]:
    """This process's counts not yet added to the database."""
    with _lock:
        return dict(_unsaved)


def forget_unsaved() -> None:
    """Drop this process's unsaved counts (for tests)."""
    global _last_save
    with _lock:
        _unsaved.clear()
        _last_save = -math.inf


def save_after_write(using: str) -> None:
    """Called after a successful outbox write on `using`: the database answers again."""
    if not _unsaved or clock() - _last_save < SAVE_INTERVAL:
        return
    # In the shop's transaction, once it commits; if it rolls back, the counts wait in memory.
    transaction.on_commit(partial(save, using), using=using)


def save(using: str) -> None:
    """Add this process's counts to the CaptureCount rows on `using`; never raises."""
    global _last_save
    with _lock:
        counts = dict(_unsaved)
        _unsaved.clear()
        _last_save = clock()
    if not counts:
        return
    from django_tracify.models import CaptureCount

    try:
        now = utc_now()
        with transaction.atomic(using=using):
            rows = CaptureCount.objects.using(using)
            for kind, count in sorted(counts.items()):
                _, created = rows.get_or_create(
                    kind=kind, defaults={"count": count, "first_at": now, "last_at": now}
                )
                if not created:
                    rows.filter(kind=kind).update(count=F("count") + count, last_at=now)
    except Exception as err:
        with _lock:
            _unsaved.update(counts)  # kept for the next try
        logger.warning("tracify: capture counts not saved yet: %s", type(err).__name__)


@dataclass(frozen=True)
class KindCount:
    kind: str
    label: str
    meaning: str
    count: int
    last_at: datetime | None


def saved_counts(using: str) -> list[KindCount]:
    """The saved count of every kind in KINDS (0 when never counted), then any other kind."""
    from django_tracify.models import CaptureCount

    rows = {row.kind: row for row in CaptureCount.objects.using(using)}
    kinds = list(KINDS) + sorted(set(rows) - set(KINDS))
    counts = []
    for kind in kinds:
        label, meaning = KINDS.get(kind, (kind, kind))
        row = rows.get(kind)
        counts.append(
            KindCount(kind, label, meaning, row.count if row else 0, row.last_at if row else None)
        )
    return counts
