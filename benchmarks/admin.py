"""The outbox admin at 1,000 and at 1,000,000 rows on PostgreSQL or MariaDB, side by side in one
run.

    .venv/bin/python benchmarks/admin.py [--runs 15] [--rows 1000000] [--keep] [--db mariadb]

Starts (or reuses) the local PostgreSQL (or MariaDB) of tests/services/ and creates two scratch
outbox databases, one filled with 1,000 events and one with --rows, in SQL, in realistic
proportions. The admin reads the outbox through TRACIFY["DATABASE"] (and OutboxRouter), so the
same Client, logged in as a superuser, alternates between the two: each page is requested on the
small and on the large outbox in turn, --runs times after a warm-up, and the medians are compared.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from tests.services import MariaDBServer, PostgresServer, start_mariadb, start_postgres  # noqa: E402

DATABASES = {
    "default": "tracify_admin_bench",
    "small": "tracify_admin_bench_small",
    "large": "tracify_admin_bench_large",
}
SMALL = 1_000
CHANGELIST = "/admin/django_tracify/outboxevent/"
PAGES = {
    "changelist": "",
    "status=dead": "?status__exact=dead",
    "type=purchase": "?type=purchase",
    "created=24h": "?created=24h",
    "search dedup key": "?q=purchase:1000121",
    "search order id": "?q=1000121",
    "search id": "?q=500",
}

# Row n: created 2 s after row n - 1 (the newest is "now"); one purchase and one conversion
# every `sale_every` rows, one dead, one pending and one discarded every `rare_every` rows,
# the rest pageviews, productviews and addtocarts, sent. The large outbox has the proportions
# of a shop (5 % sales, 1 % dead); the small one is denser so that every filtered page
# shows a full page of 100 rows on both, and only the table size differs.
# Order ids have a fixed width, as most shops' do.
FILL_SQL = """
INSERT INTO django_tracify_outboxevent (
    event_type, payload, status, attempts, next_attempt_at, dedup_key, last_error,
    last_http_status, created_at, sent_at
)
SELECT
    t.event_type,
    jsonb_build_object(
        'url', 'https://shop.example.com/products/item-' || (g.n %% 5000),
        'customer_site_id', '00000000-0000-4000-8000-000000000000',
        'identity_data', jsonb_build_object(
            encode(sha256(('ip' || g.n)::bytea), 'hex'), 3,
            encode(sha256(('ua' || g.n)::bytea), 'hex'), 4
        ),
        'datetime', to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),
        'type', t.event_type,
        'data', jsonb_build_object('origin', 'https://shop.example.com')
    ),
    s.status,
    CASE s.status WHEN 'dead' THEN 12 WHEN 'sent' THEN 1 ELSE 0 END,
    c.created_at,
    CASE WHEN t.event_type IN ('purchase', 'conversion')
        THEN t.event_type || ':' || (1000000 + g.n) END,
    CASE s.status
        WHEN 'dead' THEN 'HTTP 400: {"status": false, "error": "invalid amount"}' ELSE ''
    END,
    CASE s.status WHEN 'dead' THEN 400 WHEN 'sent' THEN 200 END,
    c.created_at,
    CASE s.status WHEN 'sent' THEN c.created_at + interval '4 seconds' END
FROM generate_series(%(start)s::bigint, %(stop)s::bigint) AS g(n)
CROSS JOIN LATERAL (
    SELECT now() - (%(total)s - g.n) * interval '2 seconds' AS created_at
) AS c
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN g.n %% %(sale_every)s = 1 THEN 'purchase'
        WHEN g.n %% %(sale_every)s = 2 THEN 'conversion'
        WHEN g.n %% 4 < 2 THEN 'pageview'
        WHEN g.n %% 4 = 2 THEN 'productview'
        ELSE 'addtocart'
    END AS event_type
) AS t
CROSS JOIN LATERAL (
    SELECT CASE g.n %% %(rare_every)s WHEN 7 THEN 'dead' WHEN 5 THEN 'pending'
        WHEN 3 THEN 'discarded' ELSE 'sent' END AS status
) AS s
"""

# The same rows on MariaDB: its Sequence engine's seq_<low>_to_<high> stands in for
# generate_series.
MARIADB_FILL_SQL = """
INSERT INTO django_tracify_outboxevent (
    event_type, payload, status, attempts, next_attempt_at, dedup_key, last_error,
    last_http_status, created_at, sent_at
)
SELECT
    t.event_type,
    JSON_OBJECT(
        'url', CONCAT('https://shop.example.com/products/item-', t.n %% 5000),
        'customer_site_id', '00000000-0000-4000-8000-000000000000',
        'identity_data', JSON_OBJECT(
            SHA2(CONCAT('ip', t.n), 256), 3, SHA2(CONCAT('ua', t.n), 256), 4
        ),
        'datetime', DATE_FORMAT(t.created_at, '%%Y-%%m-%%d %%H:%%i:%%s'),
        'type', t.event_type,
        'data', JSON_OBJECT('origin', 'https://shop.example.com')
    ),
    t.status,
    CASE t.status WHEN 'dead' THEN 12 WHEN 'sent' THEN 1 ELSE 0 END,
    t.created_at,
    CASE WHEN t.event_type IN ('purchase', 'conversion')
        THEN CONCAT(t.event_type, ':', 1000000 + t.n) END,
    CASE t.status
        WHEN 'dead' THEN 'HTTP 400: {"status": false, "error": "invalid amount"}' ELSE ''
    END,
    CASE t.status WHEN 'dead' THEN 400 WHEN 'sent' THEN 200 END,
    t.created_at,
    CASE t.status WHEN 'sent' THEN t.created_at + INTERVAL 4 SECOND END
FROM (
    SELECT
        seq AS n,
        UTC_TIMESTAMP(6) - INTERVAL ((%(total)s - seq) * 2) SECOND AS created_at,
        CASE
            WHEN seq %% %(sale_every)s = 1 THEN 'purchase'
            WHEN seq %% %(sale_every)s = 2 THEN 'conversion'
            WHEN seq %% 4 < 2 THEN 'pageview'
            WHEN seq %% 4 = 2 THEN 'productview'
            ELSE 'addtocart'
        END AS event_type,
        CASE seq %% %(rare_every)s WHEN 7 THEN 'dead' WHEN 5 THEN 'pending'
            WHEN 3 THEN 'discarded' ELSE 'sent' END AS status
    FROM SEQUENCE
) AS t
"""


@dataclass
class Timing:
    median_ms: float
    queries: int
    slowest_ms: float
    slowest_sql: str
    count_label: str
    rows_shown: int


def create_databases(server: PostgresServer | MariaDBServer, create: bool = True) -> None:
    if isinstance(server, MariaDBServer):
        for name in DATABASES.values():
            server.drop_database(name)
            if create:
                server.create_database(name)
        return
    import psycopg

    with psycopg.connect(server.conninfo, autocommit=True) as conn:
        for name in DATABASES.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            if create:
                conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(server: PostgresServer | MariaDBServer) -> None:
    import django
    from django.conf import settings

    from tests import settings as test_settings

    values = {name: getattr(test_settings, name) for name in dir(test_settings) if name.isupper()}
    values["DATABASES"] = {
        alias: {**server.django_database(), "NAME": name} for alias, name in DATABASES.items()
    }
    if isinstance(server, MariaDBServer):
        values["DATABASES"] = {
            alias: server.django_database(name) for alias, name in DATABASES.items()
        }
    values["DATABASE_ROUTERS"] = ["django_tracify.routers.OutboxRouter"]
    settings.configure(**values)
    django.setup()


def outbox_on(alias: str) -> Any:
    from django.conf import settings
    from django.test import override_settings

    return override_settings(TRACIFY={**settings.TRACIFY, "DATABASE": alias})


def fill(alias: str, rows: int, sale_every: int, rare_every: int) -> None:
    from django.db import connections

    chunk = 250_000
    mariadb = connections[alias].vendor == "mysql"
    with connections[alias].cursor() as cursor:
        for low in range(1, rows + 1, chunk):
            high = min(low + chunk - 1, rows)
            cursor.execute(
                MARIADB_FILL_SQL.replace("SEQUENCE", f"seq_{low}_to_{high}")
                if mariadb
                else FILL_SQL,
                {
                    "start": low,
                    "stop": high,
                    "total": rows,
                    "sale_every": sale_every,
                    "rare_every": rare_every,
                },
            )
        if mariadb:
            cursor.execute("ANALYZE TABLE django_tracify_outboxevent")
            cursor.fetchall()
            return
        # What autovacuum does on a live table: statistics, and the visibility map that lets
        # counts be answered from the indexes alone.
        cursor.execute("VACUUM ANALYZE django_tracify_outboxevent")


def request(client: Any, alias: str, url: str) -> tuple[float, Any]:
    with outbox_on(alias):
        began = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - began
    assert response.status_code == 200, (alias, url, response.status_code)
    return elapsed, response


def profile(client: Any, alias: str, url: str) -> tuple[int, dict[str, Any], str, int]:
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with (
        CaptureQueriesContext(connections["default"]) as auth_queries,
        CaptureQueriesContext(connections[alias]) as outbox_queries,
    ):
        _, response = request(client, alias, url)
    slowest = max(outbox_queries.captured_queries, key=lambda query: float(query["time"]))
    changelist = response.context_data["cl"]
    queries = len(auth_queries) + len(outbox_queries)
    return queries, slowest, changelist.paginator.count_label, len(changelist.result_list)


def time_pages(client: Any, runs: int) -> dict[tuple[str, str], Timing]:
    """Each page on the small and the large outbox in turn, so load changes hit both."""
    samples: dict[tuple[str, str], list[float]] = {}
    for name, query in PAGES.items():
        for alias in ("small", "large"):
            request(client, alias, CHANGELIST + query)  # warm-up
        for _ in range(runs):
            for alias in ("small", "large"):
                elapsed, _ = request(client, alias, CHANGELIST + query)
                samples.setdefault((name, alias), []).append(elapsed)
    timings = {}
    for (name, alias), values in samples.items():
        queries, slowest, label, rows_shown = profile(client, alias, CHANGELIST + PAGES[name])
        timings[name, alias] = Timing(
            median_ms=statistics.median(values) * 1000,
            queries=queries,
            slowest_ms=float(slowest["time"]) * 1000,
            slowest_sql=slowest["sql"],
            count_label=label,
            rows_shown=rows_shown,
        )
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--db", choices=["postgres", "mariadb"], default="postgres")
    args = parser.parse_args()

    server = start_mariadb() if args.db == "mariadb" else start_postgres()
    create_databases(server)
    setup_django(server)
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client

    call_command("migrate", verbosity=0)
    for alias in ("small", "large"):
        with outbox_on(alias):
            call_command("migrate", "django_tracify", database=alias, verbosity=0)
    began = time.perf_counter()
    fill("small", SMALL, sale_every=10, rare_every=10)
    fill("large", args.rows, sale_every=20, rare_every=100)
    print(f"filled {SMALL:,} + {args.rows:,} rows in {time.perf_counter() - began:.0f} s")
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "admin"))
    timings = time_pages(client, args.runs)

    print(f"\n{args.db} on {server.host}:{server.port}, median of {args.runs} requests per page")
    print("rows: rows on the page (same on both); queries: per request, session and user")
    print("included; slowest q: the slowest of them; count: what the list says (large)\n")
    large_title = (
        f"{args.rows / 1_000_000:g}M ms" if args.rows >= 1_000_000 else f"{args.rows:,} ms"
    )
    header = (
        f"{'page':<18} {'1k ms':>7} {large_title:>9} {'ratio':>6} "
        f"{'rows':>4} {'queries':>7} {'slowest q ms':>12}  count"
    )
    print(header)
    print("-" * len(header))
    ratios = {}
    for name in PAGES:
        small, large = timings[name, "small"], timings[name, "large"]
        assert small.rows_shown == large.rows_shown, (name, small.rows_shown, large.rows_shown)
        ratios[name] = large.median_ms / small.median_ms
        print(
            f"{name:<18} {small.median_ms:>7.1f} {large.median_ms:>9.1f} {ratios[name]:>6.2f} "
            f"{large.rows_shown:>4} {large.queries:>7} {large.slowest_ms:>12.2f}  "
            f"{large.count_label}"
        )
    worst = max(PAGES, key=lambda name: timings[name, "large"].slowest_ms)
    slowest = timings[worst, "large"]
    print(f"\nslowest query on the large outbox ({worst}, {slowest.slowest_ms:.2f} ms):")
    print(f"  {slowest.slowest_sql}")
    print(f"\nworst ratio {max(ratios.values()):.2f}x (target <= 2x)")

    from django.db import connections

    connections.close_all()
    if not args.keep:
        create_databases(server, create=False)
    return 0 if max(ratios.values()) <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
