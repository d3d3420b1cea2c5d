"""Helpers for a shop's own tests: what did my code track? With no network.

    from django_tracify.testing import capture_tracking

    with capture_tracking() as tracked:
        client.post("/checkout/", {...})
    tracked.assert_tracked("purchase", order_id="1001", amount="25.00")

pytest: the `tracify_events` fixture (installed with the package as a pytest plugin).
unittest / Django's TestCase: TracifyTestMixin, with self.assertTracked(...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_tracify.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from django_tracify.testing.capture import (
        NetworkBlocked,
        TracifyTestMixin,
        TrackedEvent,
        TrackedEvents,
        capture_tracking,
    )


__all__ = [
    "NetworkBlocked",
    "TracifyTestMixin",
    "TrackedEvent",
    "TrackedEvents",
    "capture_tracking",
]

# Every public name not defined above comes from capture.py, imported on first use.
__getattr__ = lazy_exports(
    __name__, {name: "django_tracify.testing.capture" for name in __all__ if name not in globals()}
)
