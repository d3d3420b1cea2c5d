"""PgBouncer in transaction pooling mode in front of the test PostgreSQL (127.0.0.1:54329)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.services import postgres
from tests.services.common import (
    HOST,
    START_TIMEOUT,
    ServiceUnavailable,
    locked,
    os_errors_as_unavailable,
    with_log,
)
from tests.services.postgres import PG_USER, PostgresServer

PGBOUNCER_PORT = 64329


def start_pgbouncer(
    upstream: PostgresServer, base_dir: Path | None = None, port: int = PGBOUNCER_PORT
) -> PostgresServer:
    """Start PgBouncer (or reuse the one on ``port``) in transaction pooling mode, pooling
    every database of ``upstream``; where clients connect to it instead.

    Runs as the postgres OS user (PgBouncer refuses root), its files in ``base_dir``
    (default: beside the PostgreSQL cluster, in ``pgbouncer/``).
    """
    base = (
        Path(base_dir).absolute()
        if base_dir is not None
        else postgres._postgres_base(None).parent / "pgbouncer"
    )
    via = PostgresServer(host=HOST, port=port, user=upstream.user, dbname=upstream.dbname)
    with os_errors_as_unavailable("PgBouncer"), locked(base.parent / "pgbouncer.lock"):
        state = postgres.probe_postgres(port)  # PgBouncer answers an SSLRequest as PostgreSQL does
        if state == "other":
            raise ServiceUnavailable(f"port {port} on {HOST} is in use by something else")
        if state == "free":
            _cold_start(base, port, upstream)
        _wait_until_usable(via, base)
    return via


def _cold_start(base: Path, port: int, upstream: PostgresServer) -> None:
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if binary is None:
        raise ServiceUnavailable("pgbouncer is not installed: run scripts/install-system-deps.sh")
    postgres._give_to_postgres(base)
    log = base / "pgbouncer.log"
    users = base / "userlist.txt"
    postgres._write_postgres_file(users, f'"{PG_USER}" ""\n')
    config = base / "pgbouncer.ini"
    postgres._write_postgres_file(
        config,
        "; written by tests/services/pgbouncer.py\n"
        "[databases]\n"
        f"* = host={upstream.host} port={upstream.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = {HOST}\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {users}\n"
        "pool_mode = transaction\n"
        "max_client_conn = 200\n"
        "default_pool_size = 10\n"
        f"logfile = {log}\n"
        f"pidfile = {base / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"admin_users = {PG_USER}\n",
    )
    try:
        result = postgres._run_as_postgres([binary, "-d", str(config)], timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ServiceUnavailable(with_log("pgbouncer did not daemonize", log)) from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ServiceUnavailable(with_log(f"pgbouncer failed: {output}", log))


def _wait_until_usable(via: PostgresServer, base: Path) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with psycopg.connect(via.conninfo, connect_timeout=5) as connection:
                connection.execute("SELECT 1")
            return
        except psycopg.OperationalError as err:
            if time.monotonic() > deadline:
                problem = f"PgBouncer on port {via.port} not usable: {err}"
                raise ServiceUnavailable(with_log(problem, base / "pgbouncer.log")) from err
        time.sleep(0.1)
