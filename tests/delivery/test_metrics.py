from __future__ import annotations

import io
import os
import signal
import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from django_tracify import checks
from django_tracify.delivery import flushing
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from django_tracify.outbox import capture_problems
from tracify_receiver import Receiver

pytest.importorskip("prometheus_client")  # the `test` extra installs it
from prometheus_client import REGISTRY

from django_tracify.delivery import metrics
from tests.factories import OutboxRow, shop_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def installed(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(PROMETHEUS=True)
    metrics.install()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_counters_follow_a_real_flush(receiver: Receiver) -> None:
    names = [
        ("tracify_events_sent_total", "pageview"),
        ("tracify_events_sent_total", "addtocart"),
        ("tracify_events_dead_total", "purchase"),
        ("tracify_events_retried_total", "pageview"),
        ("tracify_events_retried_total", "addtocart"),
    ]
    before = {key: sample(key[0], event_type=key[1]) for key in names}
    passes = {o: sample("tracify_flush_passes_total", outcome=o) for o in ("ok", "failing")}

    shop_events()
    OutboxRow(rejected=True)
    flushing.flush()
    shop_events()
    receiver.script("http_500")
    flushing.flush()

    after = {key: sample(key[0], event_type=key[1]) - before[key] for key in names}
    assert after == {
        ("tracify_events_sent_total", "pageview"): 2,
        ("tracify_events_sent_total", "addtocart"): 1,
        ("tracify_events_dead_total", "purchase"): 1,
        ("tracify_events_retried_total", "pageview"): 2,
        ("tracify_events_retried_total", "addtocart"): 1,
    }
    assert sample("tracify_flush_passes_total", outcome="ok") - passes["ok"] == 1
    assert sample("tracify_flush_passes_total", outcome="failing") - passes["failing"] == 1


def test_installing_twice_counts_once(receiver: Receiver) -> None:
    metrics.install()
    before = sample("tracify_events_sent_total", event_type="pageview")
    shop_events()
    flushing.flush()
    assert sample("tracify_events_sent_total", event_type="pageview") - before == 2


def test_the_outbox_gauges_are_read_at_scrape_time(receiver: Receiver) -> None:
    shop_events()
    flushing.flush()
    state = FlushState.load()
    assert state.last_success_at is not None
    assert sample("tracify_last_success_timestamp_seconds") == state.last_success_at.timestamp()

    shop_events()
    oldest = OutboxEvent.objects.filter(status=OutboxStatus.PENDING).order_by("id").first()
    assert oldest is not None
    OutboxEvent.objects.filter(pk=oldest.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    OutboxRow(status=OutboxStatus.DEAD)
    capture_problems.record(capture_problems.OUTBOX_UNWRITABLE)
    capture_problems.record(capture_problems.OUTBOX_UNWRITABLE)
    capture_problems.save("default")

    assert sample("tracify_outbox_events", status="pending") == 3
    assert sample("tracify_outbox_events", status="dead") == 1
    assert sample("tracify_outbox_events", status="sending") == 0
    assert sample("tracify_outbox_events", status="sent") == 0  # never counted
    assert sample("tracify_outbox_due") == 3
    assert 600 <= sample("tracify_outbox_lag_seconds") < 24 * 3600
    assert sample("tracify_capture_problems_total", kind="outbox_unwritable") == 2
    assert sample("tracify_capture_problems_total", kind="no_client_ip") == 0

    flushing.flush()
    assert sample("tracify_outbox_events", status="pending") == 0
    assert sample("tracify_outbox_lag_seconds") == 0
    assert FlushState.objects.count() == 1


def test_a_scrape_writes_nothing() -> None:
    assert sample("tracify_outbox_lag_seconds") == 0
    assert not FlushState.objects.exists()


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[WSGIServer]]:
    """prometheus-client's HTTP servers that the test started, shut down afterwards."""
    started: list[WSGIServer] = []
    real = metrics.start_http_server

    def start(*args: Any, **kwargs: Any) -> Any:
        server, thread = real(*args, **kwargs)
        started.append(server)
        return server, thread

    monkeypatch.setattr(metrics, "start_http_server", start)
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def scrape(server: WSGIServer) -> str:
    response = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


@pytest.mark.django_db(transaction=True)
def test_serve_exposes_the_metrics_over_http(
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    servers: list[WSGIServer],
) -> None:
    receiver_settings(PROMETHEUS=True)
    shop_events()
    server = metrics.serve(port=0, addr="127.0.0.1")
    assert server is not None
    text = scrape(server)
    assert 'tracify_outbox_events{status="pending"} 3.0' in text
    before = sample("tracify_events_sent_total", event_type="pageview")
    flushing.flush()
    text = scrape(server)
    assert 'tracify_outbox_events{status="pending"} 0.0' in text
    assert f'tracify_events_sent_total{{event_type="pageview"}} {before + 2}' in text


def test_serve_is_off_without_a_port_or_without_the_setting(
    tracify_settings: Callable[..., None], servers: list[WSGIServer]
) -> None:
    assert metrics.serve() is None
    tracify_settings(PROMETHEUS=False, PROMETHEUS_PORT=9108)
    assert metrics.serve() is None
    assert servers == []


@pytest.mark.django_db(transaction=True)
def test_the_flush_loop_serves_the_metrics(
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    servers: list[WSGIServer],
) -> None:
    receiver_settings(PROMETHEUS=True, PROMETHEUS_PORT=free_port(), PROMETHEUS_ADDR="127.0.0.1")
    shop_events()
    scraped: list[str] = []

    def answered(line: str) -> None:
        scraped.append(scrape(servers[0]))
        os.kill(os.getpid(), signal.SIGTERM)

    receiver.log = answered
    call_command("tracify_flush", "--loop", "--interval", "0", stdout=io.StringIO())
    assert len(servers) == 1
    # Scraped while the first batch was being answered: the events were still being sent.
    assert 'tracify_outbox_events{status="sending"} 3.0' in scraped[0]
    assert OutboxEvent.objects.filter(status=OutboxStatus.SENT).count() == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_check_says_when_prometheus_client_is_missing(
    tracify_settings: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "tracify.E011" not in {m.id for m in checks.check_settings()}
    monkeypatch.setattr(checks, "prometheus_installed", lambda: False)
    (problem,) = [m for m in checks.check_settings() if m.id == "tracify.E011"]
    assert "prometheus-client is not installed" in problem.msg
    assert "django-tracify[prometheus]" in (problem.hint or "")
    tracify_settings(PROMETHEUS=False)
    assert "tracify.E011" not in {m.id for m in checks.check_settings()}


def test_a_port_out_of_range_is_refused(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(PROMETHEUS_PORT=70_000)
    assert "tracify.E004" in {m.id for m in checks.check_settings()}


def test_a_scrape_without_the_database_leaves_the_gauges_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import OperationalError

    def down(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(metrics.status, "read", down)
    assert REGISTRY.get_sample_value("tracify_outbox_lag_seconds") is None
    assert "outbox metrics not read: OperationalError" in caplog.text
