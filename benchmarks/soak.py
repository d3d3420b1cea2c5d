"""The soak: shop traffic, a faulty Tracify, crashing flushers; then a check that nothing was lost.

    .venv/bin/python benchmarks/soak.py --minutes 5 [--db postgres|mariadb]

For N minutes a load generator visits a shop (benchmarks/soak_site.py, gunicorn, TracifyMiddleware,
PostgreSQL or MariaDB from tests/services/): pageviews of HTML pages and purchases through
tracify.track_purchase(order), one purchase per 1,000 events carrying the receiver's poison
marker. Four `manage.py tracify_flush --loop` processes deliver the outbox to the local receiver
(tracify_receiver on 127.0.0.1), which answers 20 % of requests with a fault (500, 429 with
Retry-After, a hang beyond the client timeout, a connection reset); every few seconds one flusher
is killed with SIGKILL and started again. Then the load and the killing stop, the flushers drain
the outbox, and the run checks: every recorded event delivered, no purchase delivered twice with
different bodies, duplicates at most batch size x kills, no row left sending or pending, every
poison event dead with its error. It prints the figures (and --json writes them) and exits 1 when
a check fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.soak_fleet import (  # noqa: E402
    Fleet,
    SoakDatabase,
    free_port,
    manage,
    soak_database,
    wait_for_port,
)
from tracify_receiver import Receiver, dedup_key, event_fingerprint  # noqa: E402

API_KEY = "soak-key-not-secret"
POISON_MARKER = "SOAK-POISON-MARKER"
POISON_SUFFIX = "-poison"  # an order id ending so makes soak_site put the marker in its title
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
FAULT_MIX = ["http_500", "http_429", "hang", "reset"]
TABLE = "django_tracify_outboxevent"


@dataclass
class Options:
    seconds: float
    db: str = "postgres"
    flushers: int = 4
    kill_every: float = 4.0
    fault_rate: float = 0.2
    poison_every: int = 1000
    purchase_share: float = 0.2
    clients: int = 4
    web_workers: int = 2
    batch_size: int = 50
    lease_seconds: int = 6
    timeout: float = 1.0
    hang_seconds: float = 2.5
    drain_timeout: float = 240.0
    seed: int = 7
    log_dir: Path = REPO_ROOT / "artifacts" / "soak"


@dataclass
class Traffic:
    """What the load generator recorded: every page that answered 200."""

    pageview_paths: set[str] = field(default_factory=set)
    purchases: set[str] = field(default_factory=set)
    poison: set[str] = field(default_factory=set)
    failed_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Figures:
    database: str
    seconds: float
    recorded_pageviews: int
    recorded_purchases: int
    recorded_poison: int
    failed_page_requests: int
    outbox_rows: int
    kills: int
    receiver_requests: int
    faults: dict[str, int]
    delivered_events: int
    missing_pageviews: int
    missing_purchases: int
    purchases_twice_with_distinct_bodies: int
    duplicate_deliveries: int
    duplicate_bound: int
    left_sending: int
    left_pending: int
    poison_dead: int
    poison_dead_with_error: int
    other_dead: int
    drain_seconds: float
    events_per_second: float
    failures: list[str]


# --- load -----------------------------------------------------------------------------------


def generate_load(base_url: str, options: Options, traffic: Traffic, stop: threading.Event) -> None:
    sequence = itertools.count()
    run = uuid.uuid4().hex[:6]

    def client(number: int) -> None:
        chooser = random.Random(options.seed + number)
        session = requests.Session()
        session.headers["User-Agent"] = BROWSER_UA
        while not stop.is_set():
            n = next(sequence)
            poison = n % options.poison_every == options.poison_every - 1
            purchase = poison or chooser.random() < options.purchase_share
            order_id = f"{run}-{n}{POISON_SUFFIX if poison else ''}"
            path = f"/buy/{order_id}/" if purchase else f"/p/{run}-{n}/"
            try:
                answer = session.get(base_url + path, timeout=30)
                ok = answer.status_code == 200
            except requests.RequestException:
                ok = False
            with traffic.lock:
                if not ok:
                    traffic.failed_requests += 1
                    continue
                traffic.pageview_paths.add(path)
                if poison:
                    traffic.poison.add(order_id)
                elif purchase:
                    traffic.purchases.add(order_id)

    threads = [
        threading.Thread(target=client, args=(number,), daemon=True)
        for number in range(options.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def kill_flushers(
    fleet: Fleet, flushers: list[subprocess.Popen[bytes]], options: Options, stop: threading.Event
) -> int:
    """SIGKILL one flusher every `kill_every` seconds (in turn) and start it again."""
    kills = 0
    while not stop.wait(options.kill_every):
        slot = kills % len(flushers)
        process = flushers[slot]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        kills += 1
        flushers[slot] = fleet.flusher(slot, options.batch_size)
    return kills


# --- checks ---------------------------------------------------------------------------------


def outbox_counts(database: SoakDatabase) -> dict[str, int]:
    rows = database.rows(f"SELECT status, count(*) FROM {TABLE} GROUP BY status")
    return {str(status): int(count) for status, count in rows}


def drain(database: SoakDatabase, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        counts = outbox_counts(database)
        if not counts.get("pending") and not counts.get("sending"):
            break
        time.sleep(0.5)
    return time.monotonic() - started


def check(
    options: Options,
    traffic: Traffic,
    receiver: Receiver,
    database: SoakDatabase,
    kills: int,
    drain_seconds: float,
) -> Figures:
    delivered = receiver.accepted_events()
    delivered_paths = {
        urlsplit(event["url"]).path for event in delivered if event.get("type") == "pageview"
    }
    bodies: dict[str, set[str]] = {}
    for event in delivered:
        key = dedup_key(event)
        if key is not None:
            bodies.setdefault(key, set()).add(event_fingerprint(event))
    fingerprints = Counter(event_fingerprint(event) for event in delivered)
    counts = outbox_counts(database)
    poison_rows = database.rows(
        f"SELECT status, last_error FROM {TABLE} WHERE {database.payload_text} LIKE %s",
        (f"%{POISON_MARKER}%",),
    )
    faults = Counter(request.fault for request in receiver.requests() if request.fault)
    poison_dead = [error for status, error in poison_rows if status == "dead"]
    figures = Figures(
        database=options.db,
        seconds=options.seconds,
        recorded_pageviews=len(traffic.pageview_paths),
        recorded_purchases=len(traffic.purchases) + len(traffic.poison),
        recorded_poison=len(traffic.poison),
        failed_page_requests=traffic.failed_requests,
        outbox_rows=sum(counts.values()),
        kills=kills,
        receiver_requests=len(receiver.requests()),
        faults=dict(sorted(faults.items())),
        delivered_events=len(delivered),
        missing_pageviews=len(traffic.pageview_paths - delivered_paths),
        missing_purchases=sum(
            1 for order_id in traffic.purchases if f"purchase:{order_id}" not in bodies
        ),
        purchases_twice_with_distinct_bodies=sum(1 for seen in bodies.values() if len(seen) > 1),
        duplicate_deliveries=sum(count - 1 for count in fingerprints.values()),
        duplicate_bound=options.batch_size * kills,
        left_sending=counts.get("sending", 0),
        left_pending=counts.get("pending", 0),
        poison_dead=len(poison_dead),
        poison_dead_with_error=sum(1 for error in poison_dead if "poison" in error.lower()),
        other_dead=counts.get("dead", 0) - len(poison_dead),
        drain_seconds=round(drain_seconds, 1),
        events_per_second=round(len(delivered) / max(options.seconds + drain_seconds, 1), 1),
        failures=[],
    )
    figures.failures = failures(figures)
    return figures


def failures(f: Figures) -> list[str]:
    rules = {
        "no page was recorded": f.recorded_pageviews > 0,
        "an event was lost before the outbox": f.outbox_rows
        == f.recorded_pageviews + f.recorded_purchases,
        "a pageview was not delivered": f.missing_pageviews == 0,
        "a purchase was not delivered": f.missing_purchases == 0,
        "a purchase was delivered twice with different bodies": (
            f.purchases_twice_with_distinct_bodies == 0
        ),
        "more duplicates than events in flight at kill time": (
            f.duplicate_deliveries <= f.duplicate_bound
        ),
        "a row was left sending": f.left_sending == 0,
        "a row was left pending": f.left_pending == 0,
        "a poison event is not dead with its error": (
            f.poison_dead == f.poison_dead_with_error == f.recorded_poison
        ),
        "a good event went dead": f.other_dead == 0,
    }
    return [rule for rule, holds in rules.items() if not holds]


# --- the run --------------------------------------------------------------------------------


def run(options: Options, keep_database: bool = False) -> Figures:
    options.log_dir.mkdir(parents=True, exist_ok=True)
    with soak_database(options.db, keep_database) as database, Receiver(API_KEY) as receiver:
        receiver.configure(
            {
                "fault_rate": options.fault_rate,
                "seed": options.seed,
                "mix": FAULT_MIX,
                "retry_after": 1,
                "hang_seconds": options.hang_seconds,
                "poison_marker": POISON_MARKER,
            }
        )
        tracify = {
            "BATCH_SIZE": options.batch_size,
            "LEASE_SECONDS": options.lease_seconds,
            "TIMEOUT": options.timeout,
            "BACKOFF_BASE_SECONDS": 0.2,
            "BACKOFF_MAX_SECONDS": 2.0,
            "MAX_ATTEMPTS": 1000,
            "FLUSHERS": options.flushers,
        }
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "DJANGO_SETTINGS_MODULE": "benchmarks.soak_settings",
            "SOAK_DATABASE": json.dumps(database.config),
            "SOAK_ENDPOINT": receiver.endpoint,
            "SOAK_API_KEY": API_KEY,
            "SOAK_TRACIFY": json.dumps(tracify),
        }
        manage(env, "migrate", "--no-input", "--verbosity", "0")
        fleet = Fleet(env, options.log_dir)
        try:
            port = free_port()
            fleet.start(
                "gunicorn",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--workers",
                    str(options.web_workers),
                    "--bind",
                    f"127.0.0.1:{port}",
                    "benchmarks.soak_site:application",
                ],
            )
            wait_for_port(port)
            flushers = [fleet.flusher(slot, options.batch_size) for slot in range(options.flushers)]
            traffic = Traffic()
            stop_load, stop_killing = threading.Event(), threading.Event()
            kills: list[int] = []
            killer = threading.Thread(
                target=lambda: kills.append(kill_flushers(fleet, flushers, options, stop_killing))
            )
            load = threading.Thread(
                target=generate_load,
                args=(f"http://127.0.0.1:{port}", options, traffic, stop_load),
            )
            killer.start()
            load.start()
            time.sleep(options.seconds)
            stop_load.set()
            load.join()
            stop_killing.set()
            killer.join()
            drain_seconds = drain(database, options.drain_timeout)
            for process in flushers:
                fleet.stop(process)
            return check(options, traffic, receiver, database, kills[0], drain_seconds)
        finally:
            fleet.stop_all()


def report(figures: Figures) -> str:
    f = figures
    lines = [
        f"soak: {f.seconds:g} s of load, 4 flushers on {f.database}, one SIGKILLed every few "
        "seconds",
        f"  recorded: {f.recorded_pageviews} pageviews, {f.recorded_purchases} purchases "
        f"({f.recorded_poison} poison); outbox rows {f.outbox_rows}; "
        f"failed page requests {f.failed_page_requests}",
        f"  receiver: {f.receiver_requests} requests, faults {f.faults}",
        f"  flushers killed: {f.kills}; drained in {f.drain_seconds} s after the load stopped",
        f"  delivered: {f.delivered_events} events ({f.events_per_second}/s over the run)",
        f"  missing: {f.missing_pageviews} pageviews, {f.missing_purchases} purchases",
        f"  purchases delivered twice with different bodies: "
        f"{f.purchases_twice_with_distinct_bodies}",
        f"  duplicate deliveries: {f.duplicate_deliveries} "
        f"(bound: batch size x kills = {f.duplicate_bound})",
        f"  left sending: {f.left_sending}; left pending: {f.left_pending}",
        f"  poison: {f.poison_dead} of {f.recorded_poison} dead, "
        f"{f.poison_dead_with_error} with the receiver's error; other dead rows: {f.other_dead}",
        "  result: " + ("OK" if not f.failures else "FAILED: " + "; ".join(f.failures)),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=None, help="load duration (default 5)")
    length.add_argument("--seconds", type=float, default=None, help="load duration in seconds")
    parser.add_argument("--kill-every", type=float, default=4.0, help="seconds between kills")
    parser.add_argument("--clients", type=int, default=4, help="concurrent visitors")
    parser.add_argument("--seed", type=int, default=7, help="seed of the receiver's faults")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--db", choices=["postgres", "mariadb"], default="postgres")
    parser.add_argument("--keep-database", action="store_true", help="for a post-mortem")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else 60 * (args.minutes or 5)
    options = Options(
        seconds=seconds,
        kill_every=args.kill_every,
        clients=args.clients,
        seed=args.seed,
        db=args.db,
    )
    figures = run(options, keep_database=args.keep_database)
    print(report(figures), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(figures), indent=2))
    return 1 if figures.failures else 0


if __name__ == "__main__":
    sys.exit(main())
