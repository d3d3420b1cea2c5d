"""Settings of the gunicorn site in tests/capture/test_middleware_cache_server.py: Django's per-site
cache in its documented order around TracifyMiddleware, and the tests/cache_views.py pages."""

from __future__ import annotations

from tests.process_settings import *  # noqa: F403

ROOT_URLCONF = "tests.cache_views"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MIDDLEWARE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_tracify.middleware.TracifyMiddleware",
    "django.middleware.cache.FetchFromCacheMiddleware",
]
