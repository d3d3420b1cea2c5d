"""The middleware lists of the test sites, each middleware named once.

SHOP is tests/settings.py's: the admin's, untracked. TRACKED is the smallest site that
TracifyMiddleware serves fully: after sessions and auth (check tracify.W004).
"""

from __future__ import annotations

SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
COMMON = "django.middleware.common.CommonMiddleware"
CSRF = "django.middleware.csrf.CsrfViewMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
MESSAGES = "django.contrib.messages.middleware.MessageMiddleware"
TRACIFY = "django_tracify.middleware.TracifyMiddleware"

SHOP = [SESSIONS, COMMON, CSRF, AUTH, MESSAGES]
TRACKED = [SESSIONS, AUTH, TRACIFY]
# Django's per-site cache, in its documented order around the tracked site.
SITE_CACHE = [
    "django.middleware.cache.UpdateCacheMiddleware",
    *TRACKED,
    "django.middleware.cache.FetchFromCacheMiddleware",
]


def tracked(middleware: list[str]) -> list[str]:
    """`middleware` with TracifyMiddleware right after authentication."""
    at = middleware.index(AUTH) + 1
    return [*middleware[:at], TRACIFY, *middleware[at:]]
