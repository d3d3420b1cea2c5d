"""Django's per-site cache around TracifyMiddleware in a real gunicorn (1 sync worker, so its
LocMemCache, which pickles like Redis and memcached, is one cache) on 127.0.0.1."""

from __future__ import annotations

import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from django_tracify.events.identity import hash_identity
from django_tracify.models import OutboxEvent
from tests.process_fixtures import OutboxDatabase, Processes, process_env, wait_until
from tracify_receiver import Receiver

pytestmark = [pytest.mark.slow]

HOST = "127.0.0.1"
ADA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
BOB = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def visit(port: int, path: str, user_agent: str) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://{HOST}:{port}{path}")
    request.add_header("User-Agent", user_agent)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_per_site_cache_serves_cached_pages_and_records_each_visitors_pageview(
    sqlite_outbox: OutboxDatabase, receiver: Receiver, processes: Processes
) -> None:
    env = {
        **process_env(sqlite_outbox, receiver),
        "DJANGO_SETTINGS_MODULE": "tests.cache_server_settings",
    }
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    site = processes.start(
        "gunicorn",
        [
            str(gunicorn),
            "--workers",
            "1",
            "--bind",
            f"{HOST}:{port}",
            "--no-control-socket",  # its default path is shared by every gunicorn on the machine
            "django.core.wsgi:get_wsgi_application()",
        ],
        env,
    )
    wait_until(lambda: answers(port), 60, site.output)
    rows = OutboxEvent.objects.using(sqlite_outbox.alias).filter(event_type="pageview")

    def visitors() -> list[str]:
        found = []
        for event in rows.order_by("id"):
            [name] = [
                name
                for name, agent in (("ada", ADA), ("bob", BOB))
                if hash_identity(agent) in event.payload["identity_data"]
            ]
            found.append(name)
        return found

    status, first = visit(port, "/page/?utm_source=fb", ADA)
    assert status == 200, first.decode(errors="replace")[:2000]
    wait_until(lambda: rows.count() == 1, 30, site.output)
    for _ in range(2):
        status, again = visit(port, "/page/?utm_source=fb", BOB)
        assert (status, again) == (200, first)  # the cached copy
    wait_until(lambda: rows.count() == 3, 30, site.output)
    assert visitors() == ["ada", "bob", "bob"]
    assert all(event.payload["data"]["utm_source"] == "fb" for event in rows)
