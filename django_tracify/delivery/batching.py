"""Batches as a flush sends them: split by body size, and the plan a dry run shows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django_tracify import outbox
from django_tracify.clock import utc_now
from django_tracify.conf import settings
from django_tracify.delivery.client import body_size, encode_body

Clock = Callable[[], datetime]
Item = tuple[outbox.ClaimedRow, bytes]


@dataclass(frozen=True)
class PlannedRequest:
    """One request a dry run would make."""

    event_ids: list[int]
    body: bytes


class OversizeEvent(NamedTuple):
    """An event a flush would mark dead without sending: alone, its body is over the limit."""

    event_id: int
    size: int


def plan(
    *, batch_size: int | None = None, limit: int | None = None, clock: Clock = utc_now
) -> Iterator[PlannedRequest | OversizeEvent]:
    """What a flush would do now, in order, reading the outbox and changing nothing."""
    size = batch_size or settings.BATCH_SIZE
    max_body = settings.MAX_BODY_BYTES
    batch: list[Item] = []
    for row in outbox.iter_due(now=clock(), limit=limit):
        batch.append((row, row.payload_json.encode()))
        if len(batch) == size:
            yield from _planned(batch, max_body)
            batch = []
    yield from _planned(batch, max_body)


def preview(
    *, batch_size: int | None = None, limit: int | None = None, clock: Clock = utc_now
) -> Iterator[PlannedRequest]:
    """The requests a flush would make now, reading the outbox and changing nothing."""
    for step in plan(batch_size=batch_size, limit=limit, clock=clock):
        if isinstance(step, PlannedRequest):
            yield step


def oversize(
    *, batch_size: int | None = None, limit: int | None = None, clock: Clock = utc_now
) -> Iterator[OversizeEvent]:
    """The events a flush would now mark dead unsent, reading the outbox and changing nothing."""
    for step in plan(batch_size=batch_size, limit=limit, clock=clock):
        if isinstance(step, OversizeEvent):
            yield step


def _planned(batch: list[Item], max_body: int) -> Iterator[PlannedRequest | OversizeEvent]:
    for chunk in split_by_size(batch, max_body):
        too_big = oversize_alone(chunk, max_body)
        if too_big is not None:
            yield OversizeEvent(chunk[0][0].id, too_big)
        else:
            ids = [row.id for row, _ in chunk]
            yield PlannedRequest(ids, encode_body([data for _, data in chunk]))


def oversize_alone(chunk: list[Item], max_body: int) -> int | None:
    """The body size of a chunk that is one event over max_body on its own; else None."""
    if len(chunk) != 1:
        return None
    size = body_size([chunk[0][1]])
    return size if size > max_body else None


def split_by_size(items: list[Item], max_body: int) -> Iterator[list[Item]]:
    """Consecutive chunks whose JSON body stays within max_body bytes (an oversized event alone)."""
    chunk: list[Item] = []
    size = body_size([])
    for item in items:
        added = len(item[1]) + (1 if chunk else 0)
        if chunk and size + added > max_body:
            yield chunk
            chunk, size, added = [], body_size([]), len(item[1])
        chunk.append(item)
        size += added
    if chunk:
        yield chunk
