"""The `tracify_events` pytest fixture. Registered by the package's pytest11 entry point;
without it (a source checkout), add `pytest_plugins = ["django_tracify.testing.pytest_plugin"]`
to your conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from django_tracify.testing.capture import TrackedEvents


@pytest.fixture
def tracify_events() -> Iterator[TrackedEvents]:
    """The events the test tracks (read from the outbox); no flush reaches Tracify meanwhile.

    Needs database access (`@pytest.mark.django_db`), as tracking itself does.
    """
    from django_tracify.testing.capture import capture_tracking

    with capture_tracking() as tracked:
        yield tracked
