"""manage.py tracify_flush: deliver the outbox to Tracify, once or in a loop."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from django_tracify import delivery, outbox
from django_tracify.clock import format_utc, utc_now
from django_tracify.conf import settings
from django_tracify.delivery import FlushResult
from django_tracify.routers import outbox_database

logger = logging.getLogger("django_tracify")

EXIT_UNAUTHORISED = 2
EXIT_UNREACHABLE = 3
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
            help="Print the requests a pass would make; send nothing, change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity: int = options["verbosity"]
        batch_size: int | None = options["batch_size"]
        limit: int | None = options["limit"]
        if options["dry_run"]:
            self._dry_run(batch_size, limit)
            return
        stop = threading.Event()
        with _stop_on_signals(stop):
            if options["loop"]:
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
            result = delivery.flush(
                batch_size=batch_size,
                limit=limit,
                sleep=stop.wait,
                should_stop=stop.is_set,
                progress=progress,
            )
        idle = not (result.requests or result.left or result.errors)
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
        count = events = too_big = 0
        for step in delivery.plan(batch_size=batch_size, limit=limit):
            if isinstance(step, delivery.OversizeEvent):
                too_big += 1
                if self.verbosity >= 1:
                    self.stdout.write(
                        f"event #{step.event_id}: {step.size:,} bytes alone, over "
                        "TRACIFY['MAX_BODY_BYTES']: would be marked dead, not sent"
                    )
                continue
            count += 1
            events += len(step.event_ids)
            if self.verbosity >= 1:
                ids = ", ".join(f"#{event_id}" for event_id in step.event_ids)
                self.stdout.write(
                    f"request {count}: {len(step.event_ids)} events, "
                    f"{len(step.body):,} bytes to {settings.ENDPOINT} ({ids})"
                )
                self.stdout.write(step.body.decode())
        if self.verbosity >= 1:
            line = f"dry run: would send {events} events in {count} requests"
            if too_big:
                line += f"; {too_big} too big would be marked dead unsent"
            self.stdout.write(line)


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
