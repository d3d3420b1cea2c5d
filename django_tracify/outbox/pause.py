"""A short pause in tracking after the outbox database failed to answer.

A database that does not answer costs each write its full connect or statement timeout; for
PAUSE_SECONDS after such a failure this process skips the outbox (the events are counted as
lost) instead of making every page wait again. One log line per pause.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import DatabaseError, InterfaceError, OperationalError

logger = logging.getLogger(__name__)

PAUSE_SECONDS = 5.0

# The database's trouble (unreachable, timed out, locked), not one event's: a DataError or an
# IntegrityError says nothing about the next event, which must not be lost for it.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)

clock = time.monotonic
_lock = threading.Lock()
_paused_until: dict[str, float] = {}


def is_paused(using: str) -> bool:
    until = _paused_until.get(using)
    return until is not None and clock() < until


def note_failure(using: str, err: DatabaseError, event_type: str) -> None:
    """Log a failed write of an event to `using`; pause when the database itself is the trouble."""
    if not isinstance(err, UNAVAILABLE_ERRORS):
        logger.error(
            "tracify: %s not recorded: the outbox write failed (%s)",
            event_type,
            type(err).__name__,
            exc_info=err,
        )
        return
    with _lock:
        starts = not is_paused(using)
        if starts:
            _paused_until[using] = clock() + PAUSE_SECONDS
    if starts:
        logger.error(
            "tracify: %s not recorded: the outbox database %r failed (%s: %s); tracking "
            "pauses for %gs, its events counted as lost (tracify_status: lost at capture). "
            "Give that database connect and statement timeouts: see the README.",
            event_type,
            using,
            type(err).__name__,
            str(err).strip(),
            PAUSE_SECONDS,
        )


def resume() -> None:
    """End every pause now (for tests)."""
    with _lock:
        _paused_until.clear()
