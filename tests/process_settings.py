"""Settings for the flusher, Celery worker and beat processes that the tests start.

Environment variables say where things are (tests/process_fixtures.py sets them):
TRACIFY_TEST_DATABASE (the JSON of a DATABASES entry), TRACIFY_TEST_ENDPOINT and
TRACIFY_TEST_API_KEY (the local receiver), TRACIFY_TEST_OVERRIDES (JSON, more TRACIFY keys),
TRACIFY_TEST_BROKER_URL and TRACIFY_TEST_QUEUE (Celery).
"""

from __future__ import annotations

import importlib.util
import json
import os

import django

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS as BASE_APPS
from tests.settings import TRACIFY as BASE_TRACIFY

DEBUG = True  # the local receiver is plain http, which check tracify.E003 allows only with DEBUG

DATABASES = {"default": json.loads(os.environ["TRACIFY_TEST_DATABASE"])}

TRACIFY = {
    **BASE_TRACIFY,
    "ENDPOINT": os.environ["TRACIFY_TEST_ENDPOINT"],
    "API_KEY": os.environ["TRACIFY_TEST_API_KEY"],
    **json.loads(os.environ.get("TRACIFY_TEST_OVERRIDES", "{}")),
}

# django.tasks with django-tasks-db's database backend and worker (test_django_tasks_e2e.py).
# On Django 5.2 it needs the django-tasks backport; without it the tests that use it skip.
if importlib.util.find_spec("django_tasks_db") and (
    django.VERSION >= (6,) or importlib.util.find_spec("django_tasks")
):
    TASKS_APPS = (
        ["django_tasks_db"] if django.VERSION >= (6,) else ["django_tasks", "django_tasks_db"]
    )
    INSTALLED_APPS = [*BASE_APPS, *TASKS_APPS]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

CELERY_BROKER_URL = os.environ.get("TRACIFY_TEST_BROKER_URL", "memory://")
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("TRACIFY_TEST_QUEUE", "celery")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_tracify": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "django_tasks_db": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
