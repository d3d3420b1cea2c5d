"""Local PostgreSQL (and PgBouncer before it), MariaDB, Redis and Chromium for the tests, the
benchmarks and the soak runs.

Each server runs in the background under ``<repo>/.services`` and outlives the process that
started it: a later call (or a later test run, or ``.ci/run``) that finds it answering on its
port reuses it. From a shell::

    python -m tests.services start     # or: stop, status
"""

from tests.services.chromium import CHROMIUM_ARGS, CHROMIUM_PATH, chromium_executable
from tests.services.common import HOST, REPO_ROOT, SERVICES_DIR, ServiceUnavailable
from tests.services.mariadb import (
    MARIADB_PORT,
    MariaDBServer,
    start_mariadb,
    stop_mariadb,
)
from tests.services.pgbouncer import PGBOUNCER_PORT, start_pgbouncer
from tests.services.postgres import PG_PORT, PostgresServer, start_postgres, stop_postgres
from tests.services.redis import REDIS_PORT, start_redis, stop_redis

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_PATH",
    "HOST",
    "MARIADB_PORT",
    "PGBOUNCER_PORT",
    "PG_PORT",
    "REDIS_PORT",
    "REPO_ROOT",
    "SERVICES_DIR",
    "MariaDBServer",
    "PostgresServer",
    "ServiceUnavailable",
    "chromium_executable",
    "start_mariadb",
    "start_pgbouncer",
    "start_postgres",
    "start_redis",
    "stop_mariadb",
    "stop_postgres",
    "stop_redis",
]
