"""Flush throughput beside a minimal reference loop, and the flusher's memory on a big backlog.

    .venv/bin/python benchmarks/flush.py [--rounds 3] [--events 20000] [--events-batch-1 500]
                                         [--backlog 200000] [--db sqlite,postgres,mariadb]

The local receiver (python -m tracify_receiver) runs in a process of its own, so it does not
share the flusher's GIL. For each database (a SQLite file; the PostgreSQL or MariaDB of
tests/services/) and batch size 1, 100 and 500, the same events are delivered, alternately (A B,
then B A), by:

- flush: `django_tracify.delivery.flushing.flush(batch_size=...)`, claims, leases and all;
- reference: read due rows in id order, POST them with one requests.Session, mark them sent
  with one UPDATE; no claiming, no retries.

Reported: median events/s of each, and their ratio. Target at batch 500: flush >= 0.6x.

Memory: a child process that only flushes (the parent filled the table with one SQL statement)
reports its peak RSS growth while it delivers the whole backlog at batch 500; run for a tenth
of --backlog and for all of it, to show that it does not grow with the backlog.
Target: under 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.outbox_fill import fill  # noqa: E402
from tests.services import PostgresServer, start_mariadb, start_postgres  # noqa: E402

PG_DATABASE = "tracify_flush_bench"
API_KEY = "bench-key"
CSID = "00000000-0000-4000-8000-000000000000"
BATCH_SIZES = (1, 100, 500)
MEMORY_BATCH = 500
RATIO_TARGET = 0.6
MEMORY_TARGET_MB = 50


# --- the receiver, in its own process --------------------------------------------------------


@contextmanager
def receiver_process() -> Iterator[str]:
    """Start `python -m tracify_receiver` on a free port; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tracify_receiver", "--port", "0", "--token", API_KEY, "--quiet"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # "Tracify receiver on http://127.0.0.1:PORT/"
        if "http://" not in first:
            raise SystemExit(f"the receiver did not start: {first!r}")
        yield first.split(" on ", 1)[1].strip().rstrip("/")
    finally:
        process.terminate()
        process.wait(10)


def control(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url + "/_control", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        result: dict[str, Any] = json.load(answer)
        return result


def accepted(url: str) -> int:
    with urllib.request.urlopen(url + "/api/v1/received", timeout=120) as answer:
        return int(json.load(answer)["counters"]["accepted"])


@contextmanager
def receiver_kept_small(url: str) -> Iterator[None]:
    """Clear the receiver every second: it keeps every event it accepted, in memory."""
    stop = threading.Event()

    def clear() -> None:
        while not stop.wait(1.0):
            control(url, {"clear": True})

    thread = threading.Thread(target=clear, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- Django and the databases ----------------------------------------------------------------


def database_settings(sqlite_path: Path, aliases: list[str]) -> dict[str, Any]:
    """DATABASES with an alias per name in `aliases`; the servers started, their scratch
    database made afresh."""
    databases: dict[str, Any] = {
        "sqlite": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(sqlite_path)}
    }
    if "postgres" in aliases:
        server = start_postgres()
        create_pg_database(server)
        databases["postgres"] = {**server.django_database(), "NAME": PG_DATABASE}
    if "mariadb" in aliases:
        mariadb = start_mariadb()
        mariadb.drop_database(PG_DATABASE)
        mariadb.create_database(PG_DATABASE)
        databases["mariadb"] = mariadb.django_database(PG_DATABASE)
    databases["default"] = databases["sqlite"]
    return databases


def setup_django(databases: dict[str, Any], endpoint: str) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        USE_TZ=True,
        SECRET_KEY="benchmark",
        ALLOWED_HOSTS=["shop.example.com"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django_tracify"],
        DATABASES=databases,
        TRACIFY={"API_KEY": API_KEY, "CUSTOMER_SITE_ID": CSID, "ENDPOINT": endpoint},
        LOGGING_CONFIG=None,
    )
    django.setup()


def outbox_on(alias: str, **values: Any) -> Any:
    from django.conf import settings
    from django.test import override_settings

    return override_settings(TRACIFY={**settings.TRACIFY, "DATABASE": alias, **values})


def template_payload() -> dict[str, Any]:
    """A valid conversion event, as track_conversion stores it."""
    from django.test import RequestFactory

    from django_tracify.capture.context import context_from_request
    from django_tracify.events.builders import build_conversion

    request = RequestFactory().get(
        "/checkout/thanks",
        HTTP_HOST="shop.example.com",
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) benchmark",
        REMOTE_ADDR="203.0.113.7",
        secure=True,
    )
    payload: dict[str, Any] = build_conversion(
        context_from_request(request), "x", "49.90", "EUR"
    ).payload
    return payload


def sent_count(alias: str) -> int:
    from django_tracify.models import OutboxEvent

    return OutboxEvent.objects.using(alias).filter(status="sent").count()


# --- the two flushers ------------------------------------------------------------------------


def run_flush(alias: str, batch_size: int, endpoint: str) -> int:
    from django_tracify.delivery.flushing import flush

    with outbox_on(alias):
        return flush(batch_size=batch_size).sent


def run_reference(alias: str, batch_size: int, endpoint: str) -> int:
    """The least a flusher must do: read, POST, mark sent."""
    import requests
    from django.utils import timezone

    from django_tracify.models import OutboxEvent

    rows = OutboxEvent.objects.using(alias)
    headers = {"tracify-token": API_KEY, "Content-Type": "application/json"}
    sent = 0
    with requests.Session() as session:
        while True:
            batch = list(
                rows.filter(status="pending")
                .order_by("id")
                .values_list("id", "payload")[:batch_size]
            )
            if not batch:
                return sent
            body = json.dumps({"events": [payload for _, payload in batch]}, separators=(",", ":"))
            answer = session.post(endpoint, data=body.encode(), headers=headers, timeout=10)
            answer.raise_for_status()
            if answer.json().get("status") is not True:
                raise RuntimeError(f"the receiver refused a batch: {answer.text}")
            ids = [row_id for row_id, _ in batch]
            rows.filter(id__in=ids).update(status="sent", sent_at=timezone.now())
            sent += len(ids)


FLUSHERS: dict[str, Callable[[str, int, str], int]] = {
    "flush": run_flush,
    "reference": run_reference,
}


@dataclass
class Throughput:
    rates: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in FLUSHERS})
    ratios: list[float] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(self.rates[name])


def measure_throughput(
    alias: str, batch_size: int, events: int, rounds: int, url: str, template: dict[str, Any]
) -> Throughput:
    endpoint = url + "/api/v1/events"
    result = Throughput()
    for round_number in range(rounds + 1):  # round 0 warms up both and is not counted
        order = list(FLUSHERS) if round_number % 2 else list(reversed(FLUSHERS))
        rates: dict[str, float] = {}
        for name in order:
            fill(alias, events, template)
            control(url, {"clear": True})
            began = time.perf_counter()
            sent = FLUSHERS[name](alias, batch_size, endpoint)
            elapsed = time.perf_counter() - began
            received = accepted(url)
            if sent != events or received != events or sent_count(alias) != events:
                raise RuntimeError(
                    f"{name} on {alias}: sent {sent}, received {received} of {events}"
                )
            rates[name] = events / elapsed
        if round_number:
            for name, rate in rates.items():
                result.rates[name].append(rate)
            result.ratios.append(rates["flush"] / rates["reference"])
    return result


# --- memory, in a child process that only flushes ---------------------------------------------


def memory_child(alias: str, databases: dict[str, Any], endpoint: str) -> None:
    setup_django(databases, endpoint)
    from django.db import connections

    from django_tracify.delivery.flushing import flush

    with outbox_on(alias):
        connections[alias].ensure_connection()
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS (VmHWM) := current RSS
        began = time.perf_counter()
        sent = flush(batch_size=MEMORY_BATCH).sent
        elapsed = time.perf_counter() - began
        peak = _status_kb("VmHWM")
    print(json.dumps({"sent": sent, "seconds": elapsed, "before_kb": before, "peak_kb": peak}))


def _status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/self/status")


def measure_memory(
    alias: str, backlog: int, databases: dict[str, Any], url: str, template: dict[str, Any]
) -> dict[str, Any]:
    fill(alias, backlog, template)
    from django.db import connections

    connections.close_all()
    command = [
        sys.executable,
        __file__,
        "--memory-child",
        alias,
        "--databases",
        json.dumps(databases),
        "--endpoint",
        url + "/api/v1/events",
    ]
    with receiver_kept_small(url):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the memory child failed:\n{done.stderr}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if measured["sent"] != backlog or sent_count(alias) != backlog:
        raise RuntimeError(f"memory run on {alias}: sent {measured['sent']} of {backlog}")
    return measured


# --- main ------------------------------------------------------------------------------------


def create_pg_database(server: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(server.conninfo, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="counted rounds (plus a warm-up)")
    parser.add_argument("--events", type=int, default=20_000, help="events per run, batch >= 100")
    parser.add_argument("--events-batch-1", type=int, default=500, help="events per run, batch 1")
    parser.add_argument("--backlog", type=int, default=200_000, help="the memory run's backlog")
    parser.add_argument(
        "--db", default="sqlite,postgres", help="a comma-separated list: sqlite,postgres,mariadb"
    )
    parser.add_argument("--no-memory", action="store_true", help="throughput only")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--databases", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, json.loads(args.databases), args.endpoint)
        return 0

    aliases = [name.strip() for name in args.db.split(",") if name.strip()]
    with tempfile.TemporaryDirectory() as scratch, receiver_process() as url:
        databases = database_settings(Path(scratch) / "outbox.sqlite3", aliases)
        setup_django(databases, url + "/api/v1/events")
        from django.core.management import call_command

        for alias in aliases:
            call_command("migrate", database=alias, verbosity=0)
        template = template_payload()
        print(f"receiver: {url} (its own process); {os.cpu_count()} CPUs")
        print(f"rounds: {args.rounds} after a warm-up, flush and reference alternating\n")

        print(
            f"{'database':<10} {'batch':>5} {'events':>7} {'flush ev/s':>11} "
            f"{'reference ev/s':>15} {'ratio':>6}  ratios per round"
        )
        missed: list[str] = []
        for alias in aliases:
            for batch_size in BATCH_SIZES:
                events = args.events_batch_1 if batch_size == 1 else args.events
                result = measure_throughput(alias, batch_size, events, args.rounds, url, template)
                ratio = statistics.median(result.ratios)
                rounds = " ".join(f"{r:.2f}" for r in result.ratios)
                print(
                    f"{alias:<10} {batch_size:>5} {events:>7} {result.median('flush'):>11,.0f} "
                    f"{result.median('reference'):>15,.0f} {ratio:>6.2f}  {rounds}",
                    flush=True,
                )
                if batch_size == 500 and ratio < RATIO_TARGET:
                    missed.append(f"{alias} batch 500: {ratio:.2f}x < {RATIO_TARGET}x")

        if args.no_memory:
            aliases = []
        print(f"\npeak RSS growth of a process that flushes a backlog (batch {MEMORY_BATCH}):")
        print(f"{'database':<10} {'backlog':>8} {'seconds':>8} {'events/s':>9} {'growth MB':>10}")
        for alias in aliases:
            for backlog in (args.backlog // 10, args.backlog):
                m = measure_memory(alias, backlog, databases, url, template)
                growth = (m["peak_kb"] - m["before_kb"]) / 1024
                print(
                    f"{alias:<10} {backlog:>8,} {m['seconds']:>8.1f} "
                    f"{backlog / m['seconds']:>9,.0f} {growth:>10.1f}",
                    flush=True,
                )
                if growth >= MEMORY_TARGET_MB:
                    missed.append(f"{alias} backlog {backlog}: {growth:.1f} MB")
    print(
        f"\ntargets: flush >= {RATIO_TARGET}x the reference at batch 500; "
        f"RSS growth < {MEMORY_TARGET_MB} MB: "
        + ("missed: " + "; ".join(missed) if missed else "met")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
