"""Settings for a gunicorn site whose outbox has a database alias of its own.

TRACIFY_TEST_OUTBOX_DATABASE: the JSON of that DATABASES entry. The site serves
tests/middleware_views.py with TracifyMiddleware only (the shop's own database is unused).
"""

from __future__ import annotations

import json
import os

from django_tracify.outbox import pause
from tests import middleware_lists
from tests.settings import *  # noqa: F403
from tests.settings import TRACIFY as BASE_TRACIFY

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    "outbox": json.loads(os.environ["TRACIFY_TEST_OUTBOX_DATABASE"]),
}
DATABASE_ROUTERS = ["django_tracify.routers.OutboxRouter"]
ROOT_URLCONF = "tests.middleware_views"
MIDDLEWARE = [middleware_lists.TRACIFY]
# Served on a unix socket as behind nginx: the visitor's address comes from X-Forwarded-For.
TRACIFY = {
    **BASE_TRACIFY,
    "DATABASE": "outbox",
    "RAISE_ERRORS": False,
    "TRUSTED_PROXY_COUNT": 1,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django_tracify": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}

# However slow this machine, the test's requests all come within the first pause.
pause.PAUSE_SECONDS = 600.0
