"""A local, Tracify-compatible server-side events API for tests, benchmarks and demos.

In a test::

    with Receiver(token="demo-key") as receiver:       # 127.0.0.1, a free port
        ...  # point the app at receiver.endpoint, flush
        assert receiver.duplicates(dedup_key) == {}    # no order delivered twice

From another process: ``python -m tracify_receiver --port 8765`` and drive it over HTTP:

- ``POST /api/v1/events``: the API. 401 for a missing or wrong ``tracify-token``, 400 for a
  body that is not JSON (gzip bodies are accepted), 200 ``{"status": false, "error": ...}``
  for a body that breaks the spec, 200 ``{"status": true}`` when every event is valid.
- ``GET /``: an HTML page of what was received; ``GET /api/v1/received``: accepted events and
  counters as JSON.
- ``GET /_control``: the fault config. ``POST /_control`` with any of::

    {"reset": true,            # forget requests and events, clear all faults (applied first)
     "clear": true,            # forget requests and events only
     "script": [...],          # replace the queue of next answers (first in, first out)
     "append": [...],          # add to it
     "fault_rate": 0.2, "seed": 1, "mix": ["http_500", "reset"],   # random faults
     "retry_after": 1, "hang_seconds": 2,                          # their parameters
     "poison_marker": "POISON"}                                    # or null

  A script entry is a kind name or an object: "ok", "status_false", "http_400", "http_401",
  {"kind": "http_429", "retry_after": 2}, "http_500", {"kind": "hang", "seconds": 2}, "reset".
  Faulted answers (all but "ok") record no accepted event.
"""

from __future__ import annotations

from tracify_receiver.faults import FAULT_KINDS, Fault, FaultPlan
from tracify_receiver.recorder import RecordedRequest, dedup_key, event_fingerprint
from tracify_receiver.server import Receiver
from tracify_receiver.validation import validate_body, validate_event

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "FaultPlan",
    "Receiver",
    "RecordedRequest",
    "dedup_key",
    "event_fingerprint",
    "validate_body",
    "validate_event",
]
