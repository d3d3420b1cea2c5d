from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import RequestFactory, override_settings

from django_tracify.outbox import capture_problems, pause
from tests import settings as test_settings

# Without django-celery-beat (the Django 6.1 env: it requires Django<6.1) these cannot run.
CELERY_TESTS = ["delivery/test_tasks.py", "e2e/test_celery_e2e.py"]
collect_ignore = [] if importlib.util.find_spec("django_celery_beat") else CELERY_TESTS

pytest_plugins: list[str] = [
    "tests.service_fixtures",
    "tests.receiver_fixtures",
    "tests.process_fixtures",
    # Also registered by the package's pytest11 entry point (same name: no clash) once installed.
    "django_tracify.testing.pytest_plugin",
]

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """Each test starts as a fresh process would: no paused outbox, no unsaved counts."""
    pause.resume()
    capture_problems.forget_unsaved()
    yield
    pause.resume()
    capture_problems.forget_unsaved()


@pytest.fixture
def tracify_settings() -> Iterator[Callable[..., None]]:
    """Change TRACIFY keys for one test: tracify_settings(BATCH_SIZE=5)."""
    overrides: list[Any] = []

    def apply(**values: Any) -> None:
        merged = {**test_settings.TRACIFY, **values}
        override = override_settings(TRACIFY=merged)
        override.enable()
        overrides.append(override)

    yield apply
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def shop_request(rf: RequestFactory) -> Callable[..., Any]:
    """A GET request from a real-looking browser to https://shop.example.com."""

    def make(path: str = "/", **extra: Any) -> Any:
        headers = {
            "HTTP_USER_AGENT": BROWSER_UA,
            "REMOTE_ADDR": "203.0.113.7",
            "HTTP_HOST": "shop.example.com",
            "wsgi.url_scheme": "https",
        }
        headers.update(extra)
        return rf.get(path, secure=True, **headers)

    return make
