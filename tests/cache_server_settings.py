"""Settings of the gunicorn site in tests/capture/test_middleware_cache_server.py: Django's per-site
cache in its documented order around TracifyMiddleware, and the tests/cache_views.py pages."""

from __future__ import annotations

from tests import middleware_lists
from tests.process_settings import *  # noqa: F403

ROOT_URLCONF = "tests.cache_views"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MIDDLEWARE = middleware_lists.SITE_CACHE
