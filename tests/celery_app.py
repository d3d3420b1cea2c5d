"""The Celery app of the end-to-end test: ``celery -A tests.celery_app worker`` (and ``beat``).

Configured like a project's own: Django settings under the CELERY_ namespace, tasks found in
INSTALLED_APPS (which finds django_tracify.tasks).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.process_settings")

app = Celery("tracify_tests")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
