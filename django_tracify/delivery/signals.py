"""Sending the delivery signals of signals.py once a flush has settled rows or ended.

Always after the settling statement committed, and through send_robust(): a receiver that
raises is logged, and the flush goes on.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from django.dispatch import Signal

from django_tracify.models import OutboxEvent
from django_tracify.outbox.states import ClaimedRow

logger = logging.getLogger(__name__)


def announce(
    signal: Signal,
    rows: Sequence[ClaimedRow],
    settled: int,
    *,
    using: str,
    marks: dict[str, Any],
    **arguments: Any,
) -> None:
    """Send `signal` for the `settled` rows of `rows` that one settlement changed.

    As a rule it changed all of them or none. When it changed some (a lease ran out under
    it, or a retry gave up on the oldest), the changed ones are those that carry its `marks`.
    """
    if not settled or not signal.has_listeners(OutboxEvent):
        return
    if settled < len(rows):
        ids = [row.id for row in rows]
        changed = set(
            OutboxEvent.objects.using(using)
            .filter(id__in=ids, **marks)
            .values_list("id", flat=True)
        )
        rows = [row for row in rows if row.id in changed]
    send(
        signal,
        event_ids=[row.id for row in rows],
        event_types=Counter(row.event_type for row in rows),
        using=using,
        **arguments,
    )


def send(signal: Signal, **arguments: Any) -> None:
    for receiver, answer in signal.send_robust(sender=OutboxEvent, **arguments):
        if isinstance(answer, Exception):
            logger.error(
                "tracify: a receiver of a delivery signal failed (%s.%s); the flush goes on",
                getattr(receiver, "__module__", "?"),
                getattr(receiver, "__qualname__", repr(receiver)),
                exc_info=answer,
            )
