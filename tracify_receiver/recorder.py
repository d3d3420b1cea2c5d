"""What the receiver was sent and what it answered, kept for tests and the page."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass
from typing import Any

Event = dict[str, Any]
EventKey = Callable[[Event], Hashable | None]

_DEDUP_FIELDS = {
    "purchase": "order_id",
    "conversion": "conversion_id",
    "postpurchasesurvey": "order_id",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request to the events endpoint and the answer it got."""

    time: float
    method: str
    path: str
    headers: dict[str, str]
    body_size: int
    events: list[Any] | None
    status: int | None
    answer: dict[str, Any] | None
    fault: str | None
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_fingerprint(event: Event) -> str:
    """The whole event as canonical JSON: equal for two deliveries of the same event."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def dedup_key(event: Event) -> str | None:
    """What Tracify deduplicates on, e.g. "purchase:<order_id>"; None for other events."""
    event_type = event.get("type")
    data = event.get("data")
    field = _DEDUP_FIELDS.get(event_type) if isinstance(event_type, str) else None
    if field is None or not isinstance(data, dict) or field not in data:
        return None
    return f"{event_type}:{data[field]}"


class Recorder:
    """Thread-safe store of requests and accepted events, with running counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._accepted: list[Event] = []
        self._by_type: Counter[str] = Counter()
        self._rejected = 0
        self._faults = 0

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            if request.fault is not None and request.fault != "ok":
                self._faults += 1
            if request.accepted and request.events is not None:
                self._accepted.extend(request.events)
                self._by_type.update(str(event.get("type")) for event in request.events)
            else:
                self._rejected += 1

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def accepted_events(self) -> list[Event]:
        """Copies of the accepted events, oldest first."""
        with self._lock:
            text = json.dumps(self._accepted)
        copies: list[Event] = json.loads(text)
        return copies

    def count_by(self, key: EventKey) -> Counter[Hashable]:
        """Accepted events counted by key(event); events whose key is None are left out."""
        with self._lock:
            keys = [key(event) for event in self._accepted]
        return Counter(k for k in keys if k is not None)

    def duplicates(self, key: EventKey = event_fingerprint) -> dict[Hashable, int]:
        """Keys accepted more than once, with their counts; {} when nothing came twice."""
        return {k: n for k, n in self.count_by(key).items() if n > 1}

    def counters(self) -> dict[str, Any]:
        """requests and rejected count requests; accepted and by_type count events."""
        with self._lock:
            return {
                "requests": len(self._requests),
                "accepted": len(self._accepted),
                "rejected": self._rejected,
                "faults": self._faults,
                "by_type": dict(sorted(self._by_type.items())),
            }

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._accepted.clear()
            self._by_type.clear()
            self._rejected = 0
            self._faults = 0
