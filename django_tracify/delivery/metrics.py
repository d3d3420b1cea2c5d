"""Prometheus metrics of delivery and the outbox, with prometheus-client (TRACIFY["PROMETHEUS"]).

The counters follow the delivery signals, in the process that flushes. The outbox gauges are
read from the database at each scrape, in whichever process is scraped (a web process's
/metrics too). Everything goes into prometheus-client's default REGISTRY.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from django.db import DatabaseError, connections
from prometheus_client import REGISTRY, CollectorRegistry, Counter, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from django_tracify import signals
from django_tracify.clock import utc_now
from django_tracify.conf import settings
from django_tracify.delivery import status
from django_tracify.models import OutboxEvent
from django_tracify.outbox.states import UNDELIVERED
from django_tracify.routers import outbox_database

logger = logging.getLogger(__name__)

EVENTS_SENT = Counter("tracify_events_sent", "Events Tracify accepted.", ["event_type"])
EVENTS_RETRIED = Counter(
    "tracify_events_retried", "Failed attempts of events that wait for another.", ["event_type"]
)
EVENTS_DEAD = Counter(
    "tracify_events_dead",
    "Events given up on: rejected, too large, out of attempts or too old.",
    ["event_type"],
)
FLUSH_PASSES = Counter("tracify_flush_passes", "Flush passes finished, by outcome.", ["outcome"])


def _count(counter: Counter) -> Callable[..., None]:
    def receiver(*, event_types: dict[str, int], **kwargs: Any) -> None:
        for event_type, count in event_types.items():
            counter.labels(event_type=event_type).inc(count)

    return receiver


def _count_pass(*, outcome: str, **kwargs: Any) -> None:
    FLUSH_PASSES.labels(outcome=outcome).inc()


RECEIVERS = {
    signals.events_sent: _count(EVENTS_SENT),
    signals.events_retried: _count(EVENTS_RETRIED),
    signals.events_dead: _count(EVENTS_DEAD),
    signals.flush_finished: _count_pass,
}


class OutboxCollector(Collector):
    """Gauges read from the outbox at scrape time; a scrape never writes."""

    def describe(self) -> list[Metric]:
        # Registering calls this instead of collect(): no query at start-up.
        return list(self._families(None))

    def collect(self) -> Iterator[Metric]:
        try:
            # The report reads on first use: the families are built here, inside the try.
            return iter(list(self._families(status.read(outbox_database(), utc_now()))))
        except DatabaseError as err:
            logger.warning("tracify: outbox metrics not read: %s", type(err).__name__)
            return iter(())

    def _families(self, report: status.OutboxReport | None) -> Iterator[Metric]:
        events = GaugeMetricFamily(
            "tracify_outbox_events",
            "Outbox rows by status (sent rows are not counted).",
            labels=["status"],
        )
        lag = GaugeMetricFamily(
            "tracify_outbox_lag_seconds",
            "Age of the oldest undelivered (pending or sending) event; 0 when none.",
        )
        due = GaugeMetricFamily("tracify_outbox_due", "Pending events due for sending now.")
        expired = GaugeMetricFamily(
            "tracify_outbox_expired_leases", "Sending rows whose flusher's lease ran out."
        )
        success = GaugeMetricFamily(
            "tracify_last_success_timestamp_seconds",
            "When a flush last sent events (Unix time); absent before the first.",
        )
        lost = CounterMetricFamily(
            "tracify_capture_problems",
            "Events lost while being captured, by kind (the saved counts).",
            labels=["kind"],
        )
        if report is not None:
            for state in UNDELIVERED:
                events.add_metric([state], report.count(state))
            lag.add_metric([], report.lag_seconds)
            due.add_metric([], report.due)
            expired.add_metric([], report.expired_leases)
            if report.flush_state.last_success_at is not None:
                success.add_metric([], report.flush_state.last_success_at.timestamp())
            for kind in report.capture_counts:
                lost.add_metric([kind.kind], kind.count)
        yield from (events, lag, due, expired, success, lost)


_installed = threading.Lock()
_collector: OutboxCollector | None = None


def install() -> None:
    """Count the delivery signals and register the outbox collector (once per process)."""
    global _collector
    with _installed:
        for signal, receiver in RECEIVERS.items():
            uid = f"django_tracify.delivery.metrics.{id(signal)}"
            signal.connect(receiver, sender=OutboxEvent, dispatch_uid=uid)
        if _collector is None:
            _collector = OutboxCollector()
            REGISTRY.register(_collector)


class _ThreadRegistry(CollectorRegistry):
    """REGISTRY for prometheus-client's own HTTP server, which answers each scrape on a new
    thread: the database connection that thread opened is closed after the scrape."""

    def collect(self) -> Iterable[Metric]:
        try:
            yield from REGISTRY.collect()
        finally:
            connections.close_all()


def serve(port: int | None = None, addr: str | None = None) -> WSGIServer | None:
    """Serve /metrics on TRACIFY['PROMETHEUS_ADDR']:['PROMETHEUS_PORT'] with prometheus-client's
    HTTP server, for a process with no web server, e.g. tracify_flush --loop (a daemon
    thread: it ends with the process)."""
    port = settings.PROMETHEUS_PORT if port is None else port
    addr = settings.PROMETHEUS_ADDR if addr is None else addr
    if port is None or not settings.PROMETHEUS:
        return None
    install()
    server, _ = start_http_server(port, addr=addr, registry=_ThreadRegistry(auto_describe=False))
    logger.info("tracify: metrics on http://%s:%d/metrics", addr, server.server_port)
    return server
