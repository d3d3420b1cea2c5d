"""Settings for a real server (gunicorn, uvicorn) the tests start: the middleware test pages,
tracked by TracifyMiddleware, on the outbox database of tests/process_settings.py."""

from __future__ import annotations

from tests import middleware_lists
from tests.process_settings import *  # noqa: F403

MIDDLEWARE = middleware_lists.TRACKED
ROOT_URLCONF = "tests.middleware_views"
