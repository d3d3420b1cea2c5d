from __future__ import annotations

import importlib.util
import os

from tests import middleware_lists

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1", "shop.example.com", "www.yourwebsite.com"]
USE_TZ = True
TIME_ZONE = "Europe/Berlin"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",  # the live server serves the admin's CSS to Chromium
    "django_tracify",
]
# tracify_schedule and the Celery end-to-end test. django-celery-beat does not install beside
# Django 6.1 yet (it requires Django<6.1): the Django 6.1 tox env runs without it.
if importlib.util.find_spec("django_celery_beat"):
    INSTALLED_APPS.append("django_celery_beat")

MIDDLEWARE = middleware_lists.SHOP

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("TRACIFY_TEST_SQLITE", ":memory:"),
    }
}

TRACIFY = {
    "API_KEY": "test-api-key-not-real",
    "CUSTOMER_SITE_ID": "00000000-0000-4000-8000-000000000000",
    "ENDPOINT": "https://tracify.invalid/api/v1/events",
    "RAISE_ERRORS": True,
}

STATIC_URL = "/static/"
