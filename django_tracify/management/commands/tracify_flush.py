"""manage.py tracify_flush: deliver the outbox to Tracify, once or in a loop."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from types import FrameType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from django.core.management.base import (
    BaseCommand,
    CommandError,
    CommandParser,
    DjangoHelpFormatter,
)
from django.db import close_old_connections
from django.db.models import Count

from django_tracify import outbox
from django_tracify.apps import prometheus_wanted
from django_tracify.clock import format_utc, utc_now
from django_tracify.conf import settings
from django_tracify.delivery import flushing
from django_tracify.delivery.flushing import FlushResult
from django_tracify.models import OutboxEvent
from django_tracify.routers import outbox_database

logger = logging.getLogger(__name__)

EXIT_UNAUTHORISED = 2
EXIT_UNREACHABLE = 3
# Not argparse's 2, which is the refused key's: a typo in a cron line must not look like one.
EXIT_USAGE = 64
EXIT_CODES = f"""\
exit status (a single pass; --loop runs until stopped and exits 0):
  0   the pass ran: events sent, nothing due, or failures left to retry later
  1   an error, e.g. the outbox database could not be reached
  {EXIT_UNAUTHORISED}   Tracify refused the API key (TRACIFY['API_KEY']); nothing sent, events kept
  {EXIT_UNREACHABLE}   Tracify was unreachable for the whole pass (DNS, firewall, TLS); events kept
  {EXIT_USAGE}  bad command-line arguments
"""
NOTHING_DUE = "nothing to send: the outbox has no due events"
SHOWN_IDS = 10
PROGRESS_MIN_BACKLOG = 5_000
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number from 1")
    return int(value)


class Command(BaseCommand):
    help = (
        "Send due outbox events to Tracify. One pass by default; --loop keeps flushing until "
        "SIGTERM/SIGINT (the batch in flight is finished first)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(
            prog_name, subcommand, epilog=EXIT_CODES, formatter_class=_HelpFormatter, **kwargs
        )
        if parser.called_from_command_line:
            parser.error = partial(_usage_error, parser)  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Flush forever, every --interval.")
        parser.add_argument(
            "--interval",
            type=float,
            default=5.0,
            help="Seconds between passes with --loop (default 5).",
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            default=None,
            help="Events per request (default TRACIFY['BATCH_SIZE']).",
        )
        parser.add_argument(
            "--limit",
            type=positive_int,
            default=None,
            help="At most this many events per pass.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say what a pass would send (events and requests by type, oversize events "
            "it would mark dead); send nothing, change nothing. -v 2 also prints each request "
            "and its body.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        self.idle = False
        batch_size: int | None = options["batch_size"]
        limit: int | None = options["limit"]
        if options["dry_run"]:
            self._dry_run(batch_size, limit)
            return
        stop = threading.Event()
        with _stop_on_signals(stop):
            if options["loop"]:
                if prometheus_wanted() and settings.PROMETHEUS_PORT is not None:
                    from django_tracify.delivery import metrics

                    metrics.serve()
                if self.verbosity >= 1:
                    self.stdout.write(
                        f"flushing every {options['interval']:g} s from database "
                        f"'{outbox_database()}' to {_host(settings.ENDPOINT)}; "
                        "SIGTERM or Ctrl-C stops after the batch in flight"
                    )
                self._loop(stop, options["interval"], batch_size, limit)
                return
            result = self._pass(stop, batch_size, limit)
        if result.unauthorised:
            raise CommandError(
                "Tracify refused the API key: check TRACIFY['API_KEY']. Nothing was sent; "
                "the events wait in the outbox.",
                returncode=EXIT_UNAUTHORISED,
            )
        if result.unreachable:
            raise CommandError(
                f"Tracify was unreachable for the whole pass: {result.errors[-1]}",
                returncode=EXIT_UNREACHABLE,
            )

    def _loop(
        self, stop: threading.Event, interval: float, batch_size: int | None, limit: int | None
    ) -> None:
        while not stop.is_set():
            # As Django does around each request: a connection that a database restart,
            # failover or idle timeout broke (or that is past CONN_MAX_AGE) is replaced.
            close_old_connections()
            try:
                self._pass(stop, batch_size, limit)
            except Exception:
                # A database hiccup must not end a long-running flusher; the next pass retries.
                logger.exception("tracify: flush pass failed")
            stop.wait(interval)

    def _pass(
        self, stop: threading.Event, batch_size: int | None, limit: int | None
    ) -> FlushResult:
        with self._progress(batch_size, limit) as progress:
            result = flushing.flush(
                batch_size=batch_size,
                limit=limit,
                sleep=stop.wait,
                should_stop=stop.is_set,
                progress=progress,
            )
        idle = not (result.requests or result.left or result.errors)
        was_idle, self.idle = self.idle, idle
        if idle and self.verbosity == 1 and not was_idle:
            # Once per quiet spell: a loop does not repeat it every interval.
            line = f"{format_utc(utc_now())} {NOTHING_DUE}"
            if result.waiting_retry:
                line += f" ({result.waiting_retry:,} wait for a retry: {result.retry_error})"
            self.stdout.write(line)
        if self.verbosity >= 2 or (self.verbosity >= 1 and not idle):
            line = f"{format_utc(utc_now())} {result.summary()}"
            failed = result.unauthorised or result.unreachable
            self.stdout.write(self.style.ERROR(line) if failed else line)
        return result

    @contextmanager
    def _progress(
        self, batch_size: int | None, limit: int | None
    ) -> Iterator[Callable[[FlushResult], None] | None]:
        """A one-line progress display on a terminal when the backlog is large."""
        if self.verbosity < 1 or not self.stdout.isatty():
            yield None
            return
        backlog = outbox.count_due(now=utc_now(), using=outbox_database())
        if limit is not None:
            backlog = min(backlog, limit)
        if backlog < PROGRESS_MIN_BACKLOG:
            yield None
            return

        def show(result: FlushResult) -> None:
            done = result.sent + result.retried + result.dead
            percent = 100 * done // backlog
            self.stdout.write(
                f"\r{done:>10,} / {backlog:,} ({percent}%) sent {result.sent:,}", ending=""
            )
            self.stdout.flush()

        try:
            yield show
        finally:
            self.stdout.write("")

    def _dry_run(self, batch_size: int | None, limit: int | None) -> None:
        """A summary of what a pass would do; each request and its body too with -v 2."""
        requests = size = 0
        sending: Counter[str] = Counter()
        dying: Counter[str] = Counter()
        oversize_ids: list[int] = []
        for step in flushing.plan(batch_size=batch_size, limit=limit):
            if isinstance(step, flushing.OversizeEvent):
                oversize_ids.append(step.event_id)
                dying += _types([step.event_id])
                if self.verbosity >= 2:
                    self.stdout.write(
                        f"event #{step.event_id}: {step.size:,} bytes alone, over "
                        "TRACIFY['MAX_BODY_BYTES']: would be marked dead, not sent"
                    )
                continue
            requests += 1
            size += len(step.body)
            sending += _types(step.event_ids)
            if self.verbosity >= 2:
                ids = ", ".join(f"#{event_id}" for event_id in step.event_ids)
                self.stdout.write(
                    f"request {requests}: {len(step.event_ids)} events, "
                    f"{len(step.body):,} bytes to {settings.ENDPOINT} ({ids})"
                )
                self.stdout.write(step.body.decode())
        if self.verbosity < 1:
            return
        events = sum(sending.values())
        if not (events or oversize_ids):
            self.stdout.write(f"dry run: {NOTHING_DUE}")
            return
        self.stdout.write(
            f"dry run: would send {events:,} events in {requests:,} requests "
            f"({size:,} bytes) to {_host(settings.ENDPOINT)}"
        )
        if events:
            self.stdout.write(f"  by type: {_by_type(sending)}")
        if oversize_ids:
            shown = ", ".join(f"#{event_id}" for event_id in oversize_ids[:SHOWN_IDS])
            more = (
                f" and {len(oversize_ids) - SHOWN_IDS:,} more"
                if len(oversize_ids) > SHOWN_IDS
                else ""
            )
            self.stdout.write(
                f"  would mark {len(oversize_ids):,} dead unsent, each alone over "
                f"TRACIFY['MAX_BODY_BYTES'] ({_by_type(dying)}): {shown}{more}"
            )
        if self.verbosity < 2:
            self.stdout.write("  (-v 2 prints each request and its body)")


def _types(ids: list[int]) -> Counter[str]:
    rows = OutboxEvent.objects.using(outbox_database()).filter(id__in=ids)
    return Counter(dict(rows.order_by().values_list("event_type").annotate(n=Count("id"))))


def _by_type(counts: Counter[str]) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in sorted(counts.items()))


def _host(url: str) -> str:
    """The endpoint's host (and port): never its path or credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Django's option order; the exit status table kept as laid out."""


def _usage_error(parser: CommandParser, message: str) -> NoReturn:
    parser.print_usage(sys.stderr)
    parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM/SIGINT set `stop`; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.info("tracify: signal %d: finishing the batch in flight, then exiting", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
