"""Settings for the uvicorn site of tests/capture/test_asgi.py: tests/async_views.py behind
TracifyMiddleware, the outbox in the test's database (tests/process_settings.py)."""

from __future__ import annotations

from tests import middleware_lists
from tests.process_settings import *  # noqa: F403

ROOT_URLCONF = "tests.async_views"
MIDDLEWARE = middleware_lists.TRACKED
