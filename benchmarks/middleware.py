"""What TracifyMiddleware costs a page: time to first byte and worker CPU, side by side.

    .venv/bin/python benchmarks/middleware.py [--requests 1500] [--db sqlite,postgres]

For each database, three gunicorn servers (1 sync worker each, 127.0.0.1 only) serve the same
small HTML page, as a plain page (/product/) and as a landing page (the same with utm_* and
trc_* URL parameters), through SessionMiddleware and AuthenticationMiddleware: "plain";
"tracify", also through TracifyMiddleware (a pageview per request); "insert", the plain page
plus one raw INSERT of a pageview-sized row into a copy of the outbox table (same DDL and
indexes) from response.close(), where the middleware writes its pageview. Requests go to the
three servers and both pages in random order, so a noisy machine slows all alike. This client
runs on one core, the workers and PostgreSQL on the other (root is needed to move PostgreSQL's
processes). Reported for each page: median and p99 time to first byte, the worker's CPU per
request (/proc/<pid>/stat, read before and after each request), and the CPU of one raw INSERT
measured two ways in the same run: the insert server's CPU per request minus the plain server's
("in request", the like-for-like reference), and 500 in a row inside the plain worker ("loop",
for reference). Targets: TTFB median ratio <= 1.10 (plain and landing page); added CPU per
pageview <= 2x one raw INSERT in a request."""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.services import start_postgres  # noqa: E402

HOST = "127.0.0.1"
PG_DATABASE = "tracify_middleware_bench"
WARMUP = 200
RAW_BATCH = 500
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TTFB_TARGET = 1.10
CPU_TARGET = 2.0
PAGES = {
    "plain": "/product/",
    "landing": (
        "/product/?utm_source=newsletter&utm_medium=email&utm_campaign=summer-sale"
        "&trc_mcmp_id=1042&trc_mag_id=7&trc_mad_id=31"
    ),
}


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    worker: int = 0
    ttfb: dict[str, list[float]] = field(default_factory=lambda: {page: [] for page in PAGES})
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PAGES, 0.0))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(port: int, target: str, cookie: str = "") -> tuple[float, bytes]:
    """One request on a new connection: seconds to the first byte, and the whole answer."""
    # HTTP/1.0: no chunked encoding, and the server closes the connection when done.
    headers = f"Host: {HOST}\r\nUser-Agent: {BROWSER}\r\n"
    if cookie:
        headers += f"Cookie: {cookie}\r\n"
    request = f"GET {target} HTTP/1.0\r\n{headers}\r\n"
    with socket.create_connection((HOST, port)) as sock:
        began = time.perf_counter()
        sock.sendall(request.encode())
        first = sock.recv(65536)
        ttfb = time.perf_counter() - began
        chunks = [first]
        # The sync worker closes the connection once it is done, pageview row included.
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return ttfb, b"".join(chunks)


def body(answer: bytes) -> bytes:
    head, _, rest = answer.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.0 200", b"HTTP/1.1 200")):
        raise RuntimeError(f"unexpected answer: {answer[:300]!r}")
    return rest


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def family(pid: int) -> list[int]:
    """`pid` and its children (a PostgreSQL postmaster and its server processes)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and parent(int(entry.name)) == pid:
                found.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def postmaster(conninfo: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return parent(row[0])


@contextmanager
def pinned(pids: list[int], cores: set[int]) -> Iterator[None]:
    """Run `pids` on `cores` (processes they fork later too), as they were afterwards."""
    before = {}
    for pid in pids:
        try:
            allowed = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, cores)
        except ProcessLookupError:
            continue
        except OSError as err:  # not ours to move
            print(f"note: process {pid} stays where it was ({err}); the numbers may be noisier")
            continue
        before[pid] = allowed
    try:
        yield
    finally:
        for pid, allowed in before.items():
            with suppress(OSError):
                os.sched_setaffinity(pid, allowed)


@contextmanager
def servers(env: dict[str, str], conninfo: str | None) -> Iterator[tuple[Server, Server, Server]]:
    started: list[Server] = []
    try:
        for name, tracked in (("plain", "0"), ("tracify", "1"), ("insert", "raw")):
            port = free_port()
            process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "gunicorn"),
                    *("--workers", "1", "--worker-class", "sync", "--bind", f"{HOST}:{port}"),
                    *("--log-level", "warning", "--chdir", str(REPO_ROOT)),
                    "--no-control-socket",
                    "benchmarks.middleware_site:application",
                ],
                env={**env, "BENCH_TRACKED": tracked},
            )
            started.append(Server(name, port, process))
        for server in started:
            deadline = time.monotonic() + 30
            while True:
                try:
                    server.worker = int(body(fetch(server.port, "/__pid")[1]))
                    break
                except (OSError, RuntimeError, ValueError):
                    if time.monotonic() > deadline or server.process.poll() is not None:
                        raise RuntimeError(f"gunicorn ({server.name}) did not start") from None
                    time.sleep(0.1)
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            yield started[0], started[1], started[2]
            return
        # This client on one core; the workers and the database on the other, as a browser
        # is not on the shop's CPU. Otherwise whichever worker (or database process) happens
        # to run on the client's core delays the client's reading of an answer: its clock,
        # not the page, would pay for that work.
        shop = [server.worker for server in started]
        if conninfo is not None:
            shop += family(postmaster(conninfo))
        with pinned([os.getpid()], {cores[0]}), pinned(shop, {cores[1]}):
            yield started[0], started[1], started[2]
    finally:
        for server in started:
            server.process.terminate()
        for server in started:
            server.process.wait(timeout=30)


def prepare(env: dict[str, str]) -> None:
    code = "import benchmarks.middleware_site as site; site.prepare_database()"
    subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT, check=True)


def outbox_rows(env: dict[str, str]) -> int:
    code = (
        "import benchmarks.middleware_site\n"
        "from django_tracify.models import OutboxEvent\n"
        "print(OutboxEvent.objects.filter(event_type='pageview').count())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, check=True, capture_output=True
    )
    return int(result.stdout)


def raw_insert_cpu(server: Server) -> float:
    answer = body(fetch(server.port, f"/__raw-inserts?n={RAW_BATCH}")[1])
    value: float = json.loads(answer)["cpu_per_insert"]
    return value


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def measure(
    db: str, env: dict[str, str], requests: int, conninfo: str | None, returning: bool
) -> dict[str, dict[str, float]]:
    """For each page: TTFB and CPU per request of each server, and the raw INSERT's CPU."""
    prepare(env)
    with servers(env, conninfo) as (plain, tracked, inserting):
        cookie = ""
        if returning:  # the cookie of a session that holds a cart (and no login)
            cookie = f"sessionid={body(fetch(plain.port, '/__session')[1]).decode()}"
        visits = [(server, page) for server in (plain, tracked, inserting) for page in PAGES]
        for _ in range(WARMUP):
            for server, page in visits:
                fetch(server.port, PAGES[page], cookie)
        raw: list[float] = []
        for number in range(requests):
            random.shuffle(visits)
            for server, page in visits:
                cpu_before = cpu_seconds(server.worker)
                ttfb, answer = fetch(server.port, PAGES[page], cookie)
                # The worker closed the connection after the response's close(): pageview done.
                server.cpu[page] += cpu_seconds(server.worker) - cpu_before
                body(answer)
                server.ttfb[page].append(ttfb)
            if number % (requests // 3) == 0:
                raw.append(raw_insert_cpu(plain))
    recorded = outbox_rows(env)
    expected = (WARMUP + requests) * len(PAGES)
    if recorded != expected:
        raise RuntimeError(f"{db}: {recorded} pageviews recorded, expected {expected}")
    return {
        page: {
            "plain_median": statistics.median(plain.ttfb[page]),
            "tracify_median": statistics.median(tracked.ttfb[page]),
            "insert_median": statistics.median(inserting.ttfb[page]),
            "plain_p99": p99(plain.ttfb[page]),
            "tracify_p99": p99(tracked.ttfb[page]),
            "plain_cpu": plain.cpu[page] / requests,
            "tracify_cpu": tracked.cpu[page] / requests,
            "raw_insert_cpu": statistics.median(raw),
            "request_insert_cpu": (inserting.cpu[page] - plain.cpu[page]) / requests,
        }
        for page in PAGES
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="per server, page and database")
    parser.add_argument("--db", default="sqlite,postgres")
    parser.add_argument(
        "--returning",
        action="store_true",
        help="every request carries the session cookie of a returning, anonymous visitor",
    )
    args = parser.parse_args()
    base_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    base_env.pop("DJANGO_SETTINGS_MODULE", None)
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tracify-mw-bench-") as scratch:
        for db in args.db.split(","):
            env = {**base_env, "BENCH_DB": db}
            conninfo = None
            if db == "sqlite":
                env["BENCH_SQLITE_PATH"] = str(Path(scratch) / "bench.sqlite3")
            else:
                server = start_postgres()
                create_database(server.conninfo)
                env.update(
                    BENCH_PG_HOST=server.host,
                    BENCH_PG_PORT=str(server.port),
                    BENCH_PG_USER=server.user,
                    BENCH_PG_NAME=PG_DATABASE,
                )
                conninfo = server.conninfo
            began = time.monotonic()
            results[db] = measure(db, env, args.requests, conninfo, args.returning)
            took = time.monotonic() - began
            print(f"{db}: {args.requests} requests per server and page in {took:.0f}s")
    return report(results, args.requests)


def create_database(conninfo: str) -> None:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [PG_DATABASE])
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')


def report(results: dict[str, dict[str, dict[str, float]]], requests: int) -> int:
    ms = 1000.0
    us = 1_000_000.0
    print()
    print(
        f"{'database':<9} {'page':<8} {'TTFB median plain/tracify':>26} {'ratio':>6} "
        f"{'p99 plain/tracify':>18} {'CPU/req plain/tracify':>22} {'added':>7} "
        f"{'INSERT loop/in request':>23} {'added/INSERT loop/in request':>29}"
    )
    verdicts = []
    for db, pages in results.items():
        for page, r in pages.items():
            ratio = r["tracify_median"] / r["plain_median"]
            added = r["tracify_cpu"] - r["plain_cpu"]
            per_loop = added / r["raw_insert_cpu"]
            per_request = added / r["request_insert_cpu"]
            print(
                f"{db:<9} {page:<8} "
                f"{r['plain_median'] * ms:>11.3f} / {r['tracify_median'] * ms:.3f} ms "
                f"{ratio:>6.3f} {r['plain_p99'] * ms:>7.3f} / {r['tracify_p99'] * ms:.3f} ms "
                f"{r['plain_cpu'] * us:>9.0f} / {r['tracify_cpu'] * us:.0f} us "
                f"{added * us:>5.0f}us "
                f"{r['raw_insert_cpu'] * us:>11.0f} / {r['request_insert_cpu'] * us:.0f} us "
                f"{per_loop:>20.2f}x / {per_request:.2f}x"
            )
            verdicts.append(
                f"{db}, {page} page: TTFB ratio {ratio:.3f} "
                f"{'met' if ratio <= TTFB_TARGET else 'NOT met'}; added CPU "
                f"{per_request:.2f}x an INSERT in a request: "
                f"{'met' if per_request <= CPU_TARGET else 'NOT met'} "
                f"({per_loop:.2f}x one in a loop, for reference)"
            )
    for db, pages in results.items():
        for page, r in pages.items():
            print(
                f"{db}, {page} page: TTFB median of the plain page + raw INSERT after the "
                f"response {r['insert_median'] * ms:.3f} ms, "
                f"ratio {r['insert_median'] / r['plain_median']:.3f}"
            )
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nload average during the run: {load} on {os.cpu_count()} CPUs")
    print(
        f"targets: TTFB median ratio <= {TTFB_TARGET} (plain and landing page), "
        f"added CPU <= {CPU_TARGET}x one raw INSERT in a request"
    )
    for verdict in verdicts:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
