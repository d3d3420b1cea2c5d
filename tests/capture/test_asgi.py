"""Async views under a real ASGI server: uvicorn on 127.0.0.1 serves tests/async_views.py
behind TracifyMiddleware (its async path), writing to a file SQLite or a PostgreSQL outbox."""

from __future__ import annotations

import socket
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from django_tracify.events.identity import hash_identity
from django_tracify.models import OutboxEvent
from tests.async_views import TAG_ORDER
from tests.conftest import BROWSER_UA
from tests.process_fixtures import OutboxDatabase, Processes, process_env, wait_until
from tracify_receiver import Receiver

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def outbox(request: pytest.FixtureRequest) -> OutboxDatabase:
    database: OutboxDatabase = request.getfixturevalue(f"{request.param}_outbox")
    return database


@pytest.fixture
def site(outbox: OutboxDatabase, receiver: Receiver, processes: Processes) -> Iterator[str]:
    """The base URL of uvicorn serving the async views; stopped after the test."""
    port = free_port()
    # As in production: a failure would be a log line and a missing row, not a 500.
    env = {
        **process_env(outbox, receiver, RAISE_ERRORS=False),
        "DJANGO_SETTINGS_MODULE": "tests.asgi_settings",
    }
    server = processes.start(
        "uvicorn",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "django.core.asgi:get_asgi_application",
            "--host",
            HOST,
            "--port",
            str(port),
            "--lifespan",
            "off",
        ],
        env,
    )
    base = f"http://{HOST}:{port}"
    wait_until(lambda: answers(base), START_TIMEOUT, server.output)
    yield base
    processes.stop(server)


def answers(base: str) -> bool:
    try:
        requests.get(f"{base}/not-a-page/", timeout=5)
    except requests.ConnectionError:
        return False
    return True


def get(base: str, path: str) -> requests.Response:
    response = requests.get(base + path, headers={"User-Agent": BROWSER_UA}, timeout=30)
    assert response.status_code == 200, response.text[:2000]
    return response


def stored(outbox: OutboxDatabase) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.using(outbox.alias).order_by("id"))


def test_async_views_under_uvicorn_store_every_event(site: str, outbox: OutboxDatabase) -> None:
    ids = get(site, "/api/?utm_source=newsletter").json()
    # The async twins return their rows: written before the view answered.
    by_id = {row.pk: row for row in stored(outbox)}
    assert {name: by_id[pk].event_type for name, pk in ids.items()} == {
        "pageview": "pageview",
        "productview": "productview",
        "addtocart": "addtocart",
        "purchase": "purchase",
        "conversion": "conversion",
        "postpurchasesurvey": "postpurchasesurvey",
        "webhook": "purchase",
    }
    assert by_id[ids["addtocart"]].payload["data"]["utm_source"] == "newsletter"
    assert (
        by_id[ids["webhook"]].payload["identity_data"]
        == (by_id[ids["purchase"]].payload["identity_data"])
    )

    get(site, "/tags/")
    get(site, "/sync-calls/")
    get(site, "/page/")
    # /api/ answers JSON: its pageview is the one the view recorded. The three HTML pages get
    # theirs from the middleware after they were sent.
    expected = Counter(
        pageview=4, productview=2, addtocart=2, purchase=3, conversion=2, postpurchasesurvey=1
    )
    wait_until(
        lambda: Counter(row.event_type for row in stored(outbox)) == expected,
        START_TIMEOUT,
        lambda: f"{Counter(row.event_type for row in stored(outbox))} != {expected}",
    )
    rows = stored(outbox)
    [tag_purchase] = [row for row in rows if row.dedup_key == f"purchase:{TAG_ORDER['number']}"]
    assert tag_purchase.payload["url"] == f"{site}/tags/"
    assert all(row.status == "pending" for row in rows)
    for row in rows:
        assert hash_identity(HOST) in row.payload["identity_data"], row.event_type
        assert hash_identity(BROWSER_UA) in row.payload["identity_data"], row.event_type
    pages = {row.payload["url"] for row in rows if row.event_type == "pageview"}
    assert pages == {f"{site}{path}" for path in ("/api/", "/tags/", "/sync-calls/", "/page/")}


def test_an_async_view_under_uvicorn_answers_only_after_its_events_are_stored(
    site: str, outbox: OutboxDatabase
) -> None:
    get(site, "/sync-calls/")
    # The conversion the view called in the event loop is written before the page is sent.
    assert "conversion" in [row.event_type for row in stored(outbox)]
