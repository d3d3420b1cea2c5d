"""Settings of the example shop: SQLite, DEBUG, and django-tracify sending to a local receiver.

The demo launcher (example_project/demo.py) passes the database path and the receiver's URL
through the environment; run by hand, the defaults match `make demo`.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PROJECT_DIR.parent

SECRET_KEY = "example-project-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tracify",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After sessions (it keeps the landing URL parameters there) and auth (the user's email).
    "django_tracify.middleware.TracifyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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
                "shop.context_processors.shop",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DEMO_DATABASE", str(REPO_DIR / ".demo" / "db.sqlite3")),
        "OPTIONS": {
            # The shop and the flusher write at the same time: take the write lock when a
            # transaction starts, wait for it instead of failing, and let readers go on (WAL).
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

STATIC_URL = "/static/"

RECEIVER_URL = os.environ.get("DEMO_RECEIVER_URL", "http://127.0.0.1:8765").rstrip("/")

TRACIFY = {
    "API_KEY": "demo-key",
    "CUSTOMER_SITE_ID": "3f0c8f52-6c1e-4c8e-9d4a-8b7e2a1d5c60",
    # Plain http is allowed while DEBUG is on: the local receiver, not api.tracify.ai.
    "ENDPOINT": f"{RECEIVER_URL}/api/v1/events",
    "TIMEOUT": 5.0,
    # Short, so that a simulated outage (docs/quickstart.md: "The demo") is over within seconds.
    "BACKOFF_BASE_SECONDS": 2,
    "BACKOFF_MAX_SECONDS": 20,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_tracify": {"handlers": ["console"], "level": "INFO"}},
}
