"""The Django site benchmarks/middleware.py serves with gunicorn: one small HTML page.

Configured by environment variables: BENCH_TRACKED ("1": TracifyMiddleware on; "raw": instead,
one raw INSERT of a pageview-sized row after each response, as the pageview is written), BENCH_DB
("sqlite" with BENCH_SQLITE_PATH, or "postgres" with BENCH_PG_HOST/PORT/USER/NAME).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone

RAW_TABLE = "bench_raw_event"
PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8><title>Shop</title></head>"
    "<body><h1>Summer sale</h1>" + "<p>A product you will like.</p>" * 20 + "</body></html>"
)
# The size and shape of a stored pageview.
RAW_PAYLOAD = json.dumps(
    {
        "url": "http://127.0.0.1/product/",
        "customer_site_id": "00000000-0000-4000-8000-000000000000",
        "identity_data": {f"{kind:064x}": kind for kind in (2, 3, 4)},
        "datetime": "2026-01-01 12:00:00",
        "type": "pageview",
        "data": {"origin": "http://127.0.0.1"},
    }
)


def database() -> dict[str, object]:
    # Persistent connections, as a production site has (or a pool); both variants alike.
    if os.environ.get("BENCH_DB", "sqlite") == "postgres":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["BENCH_PG_HOST"],
            "PORT": os.environ["BENCH_PG_PORT"],
            "USER": os.environ["BENCH_PG_USER"],
            "NAME": os.environ["BENCH_PG_NAME"],
            "CONN_MAX_AGE": 600,
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["BENCH_SQLITE_PATH"],
        "CONN_MAX_AGE": 600,
    }


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


def new_session(request: HttpRequest) -> HttpResponse:
    """A stored session with a cart in it; its key, for a returning visitor's cookie."""
    request.session["cart"] = [{"product": 1, "quantity": 2}]
    request.session.save()
    return HttpResponse(request.session.session_key, content_type="text/plain")


def worker_pid(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(os.getpid()), content_type="text/plain")


RAW_INSERT = (
    f"INSERT INTO {RAW_TABLE} (event_type, payload, status, attempts, next_attempt_at, "
    "last_error, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)


def raw_insert() -> None:
    """One INSERT of a pageview-sized row, autocommitted."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(RAW_INSERT, ["pageview", RAW_PAYLOAD, "pending", 0, now, "", now])


def raw_inserts(request: HttpRequest) -> JsonResponse:
    """CPU seconds of this worker per INSERT of a pageview-sized row, autocommitted."""
    count = int(request.GET.get("n", "500"))
    began = time.process_time()
    for _ in range(count):
        raw_insert()
    return JsonResponse({"cpu_per_insert": (time.process_time() - began) / count})


class RawInsertAfterResponse:
    """The reference for TracifyMiddleware: one raw INSERT where it writes its pageview."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path == "/product/":
            response._resource_closers.append(raw_insert)  # type: ignore[attr-defined]
        return response


def prepare_database() -> None:
    """Migrate, empty the outbox, and create the raw table: the outbox's own DDL, renamed."""
    from django.core.management import call_command

    from django_tracify.models import OutboxEvent

    call_command("migrate", verbosity=0)
    OutboxEvent.objects.all().delete()
    with connection.schema_editor(collect_sql=True) as editor:
        editor.create_model(OutboxEvent)
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        for statement in editor.collected_sql:
            cursor.execute(statement.replace(table, RAW_TABLE).replace("tracify_", "bench_raw_"))


settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django_tracify",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        *{
            "1": ["django_tracify.middleware.TracifyMiddleware"],
            "raw": ["benchmarks.middleware_site.RawInsertAfterResponse"],
        }.get(os.environ.get("BENCH_TRACKED", ""), []),
    ],
    DATABASES={"default": database()},
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    TRACIFY={
        "API_KEY": "benchmark-not-a-key",
        "CUSTOMER_SITE_ID": "00000000-0000-4000-8000-000000000000",
        "RAISE_ERRORS": False,
    },
)
django.setup()

urlpatterns = [
    path("product/", page),
    path("__pid", worker_pid),
    path("__session", new_session),
    path("__raw-inserts", raw_inserts),
]

application = get_wsgi_application()
