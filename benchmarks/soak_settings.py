"""Django settings for the soak (benchmarks/soak.py): the shop site and its flushers.

Environment: SOAK_DATABASE (the JSON of a DATABASES entry, PostgreSQL), SOAK_ENDPOINT and
SOAK_API_KEY (the local receiver), SOAK_TRACIFY (JSON, more TRACIFY keys).
"""

from __future__ import annotations

import json
import os

SECRET_KEY = "soak-only-not-secret"
DEBUG = True  # the local receiver is plain http, which check tracify.E003 allows only with DEBUG
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
ROOT_URLCONF = "benchmarks.soak_site"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_tracify"]
MIDDLEWARE = ["django_tracify.middleware.TracifyMiddleware"]
DATABASES = {"default": {**json.loads(os.environ["SOAK_DATABASE"]), "CONN_MAX_AGE": 60}}

TRACIFY = {
    "API_KEY": os.environ["SOAK_API_KEY"],
    "CUSTOMER_SITE_ID": "00000000-0000-4000-8000-000000000000",
    "ENDPOINT": os.environ["SOAK_ENDPOINT"],
    "RAISE_ERRORS": False,
    **json.loads(os.environ.get("SOAK_TRACIFY", "{}")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_tracify": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
