"""The path settings name: MIDDLEWARE = [..., "django_tracify.middleware.TracifyMiddleware"]."""

from __future__ import annotations

from django_tracify.capture.middleware import TracifyMiddleware

__all__ = ["TracifyMiddleware"]
