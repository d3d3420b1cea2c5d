"""Capture what a block of code tracked, assert on it, and keep the flush off the network."""

from __future__ import annotations

import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from django_tracify.delivery.client import TracifyClient
from django_tracify.routers import outbox_database

_MISSING = object()


class NetworkBlocked(RuntimeError):
    """A flush tried to reach Tracify while tracking was captured (nothing was sent)."""


@dataclass(frozen=True)
class TrackedEvent:
    """One outbox row stored during the capture: the event body that would be sent."""

    id: int
    event_type: str
    status: str
    payload: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        data = self.payload.get("data")
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Any:
        """A key of the event's `data` (order_id, amount, ...), else of the body (url, ...)."""
        return self.data.get(key, self.payload.get(key, _MISSING))

    def differences(self, expected: dict[str, Any]) -> list[str]:
        """How this event differs from `expected`; empty when it matches."""
        found = []
        for key, value in expected.items():
            actual = self.get(key)
            if actual is _MISSING:
                found.append(f"{key} missing")
            elif not _same(actual, value):
                found.append(f"{key}={actual!r} (expected {value!r})")
        return found

    def describe(self) -> str:
        shown = {key: value for key, value in self.data.items() if key != "origin"}
        fields = " ".join(f"{key}={value!r}" for key, value in shown.items())
        return f"#{self.id} {self.event_type} url={self.payload.get('url')!r} {fields}".rstrip()


def _same(actual: Any, expected: Any) -> bool:
    # The body holds strings ("25.00"); a test may name the value it put in (Decimal("25.00")).
    return bool(actual == expected) or (isinstance(actual, str) and actual == str(expected))


class TrackedEvents:
    """The events stored in the outbox since the capture began, read from the outbox table.

    Rows rolled back with the shop's transaction are gone here too, as they are for Tracify.
    """

    def __init__(self, using: str | None = None) -> None:
        from django_tracify.models import OutboxEvent

        self.using = using or outbox_database()
        self._rows = OutboxEvent.objects.using(self.using)
        self.start_id: int = self._rows.order_by("-id").values_list("id", flat=True).first() or 0

    def _tracked(self) -> list[TrackedEvent]:
        rows = self._rows.filter(id__gt=self.start_id).order_by("id")
        return [
            TrackedEvent(row.id, row.event_type, row.status, row.payload)
            for row in rows.only("id", "event_type", "status", "payload")
        ]

    @property
    def all(self) -> list[TrackedEvent]:
        """Every event tracked so far, oldest first (not the ones refused as invalid)."""
        return [event for event in self._tracked() if event.status != "invalid"]

    @property
    def invalid(self) -> list[TrackedEvent]:
        """Events refused as invalid (their row keeps the error, not a body)."""
        return [event for event in self._tracked() if event.status == "invalid"]

    def of_type(self, event_type: str) -> list[TrackedEvent]:
        return [event for event in self.all if event.event_type == event_type]

    def __len__(self) -> int:
        return len(self.all)

    def __iter__(self) -> Iterator[TrackedEvent]:
        return iter(self.all)

    def matching(self, event_type: str | None = None, **expected: Any) -> list[TrackedEvent]:
        return [
            event
            for event in self.all
            if event_type in (None, event.event_type) and not event.differences(expected)
        ]

    def assert_tracked(self, event_type: str, **expected: Any) -> TrackedEvent:
        """The first `event_type` event whose data (or body) has these values; else an
        AssertionError listing what was tracked and how each such event differs."""
        found = self.matching(event_type, **expected)
        if found:
            return found[0]
        raise AssertionError(self._report(f"No {event_type} tracked", event_type, expected))

    def assert_not_tracked(self, event_type: str | None = None, **expected: Any) -> None:
        found = self.matching(event_type, **expected)
        if found:
            what = event_type or "event"
            listed = "".join(f"\n  {event.describe()}" for event in found)
            raise AssertionError(f"Expected no {what}{_values(expected)}, tracked:{listed}")

    def _report(self, headline: str, event_type: str, expected: dict[str, Any]) -> str:
        tracked = self.all
        lines = [f"{headline}{_values(expected)}."]
        lines.append(f"Tracked in this block ({len(tracked)}):" if tracked else "Nothing tracked.")
        for event in tracked:
            line = f"  {event.describe()}"
            if event.event_type == event_type:
                line += f"\n      differs: {', '.join(event.differences(expected))}"
            lines.append(line)
        for event in self.invalid:
            lines.append(f"  #{event.id} {event.event_type}: refused as invalid")
        return "\n".join(lines)


def _values(expected: dict[str, Any]) -> str:
    if not expected:
        return ""
    return " with " + ", ".join(f"{key}={value!r}" for key, value in expected.items())


def _refuse_to_send(client: TracifyClient, body: bytes) -> Any:
    raise NetworkBlocked(
        f"django_tracify.testing: a flush tried to POST {len(body)} bytes to "
        f"{client.endpoint} while tracking was captured; nothing was sent."
    )


@contextmanager
def capture_tracking(
    *, using: str | None = None, block_network: bool = True
) -> Iterator[TrackedEvents]:
    """Capture the events tracked in the block; while it runs, no flush reaches Tracify.

    with capture_tracking() as tracked:
        client.post("/checkout/", ...)
    tracked.assert_tracked("purchase", order_id="1001", amount="25.00")
    """
    tracked = TrackedEvents(using)
    if not block_network:
        yield tracked
        return
    with mock.patch.object(TracifyClient, "post", _refuse_to_send):
        yield tracked


class TracifyTestMixin(unittest.TestCase):
    """For a Django TestCase: each test captures tracking in `self.tracked`, with no network.

    class CheckoutTests(TracifyTestMixin, TestCase): ...
    """

    tracked: TrackedEvents

    def setUp(self) -> None:
        super().setUp()
        capture = capture_tracking()
        self.tracked = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)

    def assertTracked(self, event_type: str, **expected: Any) -> TrackedEvent:
        return self.tracked.assert_tracked(event_type, **expected)

    def assertNotTracked(self, event_type: str | None = None, **expected: Any) -> None:
        self.tracked.assert_not_tracked(event_type, **expected)
