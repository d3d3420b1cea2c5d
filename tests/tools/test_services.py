from __future__ import annotations

import contextlib
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeAlias
from urllib.parse import urlsplit

import pytest

from tests.service_fixtures import skip_or_fail
from tests.services import (
    CHROMIUM_ARGS,
    HOST,
    PGBOUNCER_PORT,
    MariaDBServer,
    PostgresServer,
    ServiceUnavailable,
    mariadb,
    postgres,
    start_mariadb,
    start_postgres,
    start_redis,
    stop_mariadb,
    stop_postgres,
    stop_redis,
)

if TYPE_CHECKING:
    from typing_extensions import LiteralString

RedisReply: TypeAlias = "bytes | int | list[RedisReply] | None"


def query(server: PostgresServer, sql: LiteralString) -> str:
    """The first value of the first row, as text: through psycopg if installed, else psql."""
    db = server.django_database()
    if importlib.util.find_spec("psycopg") is not None:
        import psycopg

        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], connect_timeout=10
        ) as connection:
            row = connection.execute(sql).fetchone()
        assert row is not None
        return str(row[0])
    result = subprocess.run(
        [
            *(postgres._pg_bin("psql"), "-X", "-t", "-A", "-v", "ON_ERROR_STOP=1"),
            *("-h", db["HOST"], "-p", db["PORT"], "-U", db["USER"], "-d", db["NAME"], "-c", sql),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout.strip()


def redis_command(url: str, *words: str) -> RedisReply:
    """Send one command over a plain socket and parse its RESP reply."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    request = f"*{len(words)}\r\n" + "".join(f"${len(w.encode())}\r\n{w}\r\n" for w in words)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(request.encode())
        with sock.makefile("rb") as reader:
            return read_reply(reader)


def read_reply(reader: BinaryIO) -> RedisReply:
    line = reader.readline()
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise AssertionError(f"Redis error: {rest!r}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        return reader.read(size + 2)[:-2]
    if kind == b"*":
        return [read_reply(reader) for _ in range(int(rest))]
    raise AssertionError(f"unexpected reply {line!r}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def nothing_listens_on(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


@pytest.fixture
def foreign_port() -> Iterator[int]:
    """A port held by a program that speaks neither PostgreSQL nor Redis."""
    listener = socket.create_server((HOST, 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection, contextlib.suppress(OSError):
                connection.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        done.set()
        thread.join(timeout=5)
        listener.close()


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_answers_queries_in_the_tracify_database(postgres_server: PostgresServer) -> None:
    assert (postgres_server.host, postgres_server.port) == ("127.0.0.1", 54329)
    assert query(postgres_server, "SELECT current_database()") == "tracify"
    assert query(postgres_server, "SELECT 6 * 7") == "42"


@pytest.mark.postgres
def test_postgres_runs_with_test_speed_settings(postgres_server: PostgresServer) -> None:
    assert query(postgres_server, "SHOW fsync") == "off"
    assert query(postgres_server, "SHOW synchronous_commit") == "off"
    assert query(postgres_server, "SHOW max_connections") == "200"
    assert query(postgres_server, "SHOW listen_addresses") == "127.0.0.1"


@pytest.mark.postgres
def test_second_start_reuses_the_running_postgres(postgres_server: PostgresServer) -> None:
    started_at = query(postgres_server, "SELECT pg_postmaster_start_time()::text")

    again = start_postgres()

    assert again == postgres_server
    assert query(again, "SELECT pg_postmaster_start_time()::text") == started_at


@pytest.mark.postgres
def test_the_command_line_reports_a_running_postgres(
    postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.services.__main__ import main

    assert main(["status", "postgres"]) == 0
    assert capsys.readouterr().out == "postgres: running on port 54329\n"
    assert main(["start", "postgres"]) == 0
    assert capsys.readouterr().out.startswith(f"postgres: {postgres_server.url} (ready in ")


@pytest.mark.postgres
def test_django_database_entry_and_url(postgres_server: PostgresServer) -> None:
    assert postgres_server.django_database() == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "tracify",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": "127.0.0.1",
        "PORT": "54329",
    }
    assert (
        str(postgres_server) == postgres_server.url == "postgres://postgres@127.0.0.1:54329/tracify"
    )


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_cold_start_stop_and_restart_in_its_own_folder() -> None:
    # Not tmp_path: pytest makes that private to root, out of the postgres user's reach.
    base = Path(tempfile.mkdtemp(prefix="tracify-pg-test-"))
    port = free_port()
    try:
        server = start_postgres(base, port)
        assert (base / "data" / "PG_VERSION").is_file()
        assert query(server, "SELECT current_database()") == "tracify"

        stop_postgres(base)
        assert nothing_listens_on(port)
        stop_postgres(base)  # stopping a stopped server is a no-op

        restarted = start_postgres(base, port)
        assert query(restarted, "SELECT count(*) FROM pg_database WHERE datname = 'tracify'") == "1"
    finally:
        stop_postgres(base)
        shutil.rmtree(base, ignore_errors=True)
    assert nothing_listens_on(port)


def test_postgres_refuses_a_port_held_by_another_program(foreign_port: int, tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="not PostgreSQL") as raised:
        start_postgres(tmp_path / "pg", foreign_port)
    assert str(foreign_port) in raised.value.reason


def test_missing_postgres_binaries_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres, "PG_BINDIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ServiceUnavailable, match="initdb is not in"):
        start_postgres(tmp_path / "pg", free_port())


# --- Redis ----------------------------------------------------------------------------------


def test_redis_answers_ping_over_a_raw_socket(redis_url: str) -> None:
    assert redis_url == "redis://127.0.0.1:63799/0"
    with socket.create_connection(("127.0.0.1", 63799), timeout=10) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"


def test_redis_keeps_nothing_on_disk(redis_url: str) -> None:
    assert redis_command(redis_url, "CONFIG", "GET", "save") == [b"save", b""]
    assert redis_command(redis_url, "CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]


def test_second_start_reuses_the_running_redis(redis_url: str) -> None:
    before = redis_command(redis_url, "INFO", "server")
    assert isinstance(before, bytes)

    assert start_redis() == redis_url

    after = redis_command(redis_url, "INFO", "server")
    assert isinstance(after, bytes)
    run_id = [line for line in before.splitlines() if line.startswith(b"run_id:")]
    assert len(run_id) == 1
    assert run_id[0] in after.splitlines()


def test_redis_cold_start_and_stop(tmp_path: Path) -> None:
    port = free_port()
    try:
        url = start_redis(port, tmp_path)
        assert url == f"redis://127.0.0.1:{port}/0"
        assert redis_command(url, "SET", "tracify", "ok") == b"OK"
        assert redis_command(url, "GET", "tracify") == b"ok"
    finally:
        stop_redis(port)
    assert nothing_listens_on(port)
    assert list(tmp_path.glob("*.rdb")) == []
    stop_redis(port)  # stopping a stopped server is a no-op


def test_redis_refuses_a_port_held_by_another_program(foreign_port: int, tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="not Redis"):
        start_redis(foreign_port, tmp_path)


def test_missing_redis_server_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ServiceUnavailable, match="redis-server is not on PATH"):
        start_redis(free_port(), tmp_path)


# --- MariaDB and PgBouncer ------------------------------------------------------------------


@pytest.mark.mariadb
def test_mariadb_answers_in_utf8mb4(mariadb_server: MariaDBServer) -> None:
    assert mariadb_server.port == 33069
    rows = mariadb_server.execute("SELECT @@character_set_server, @@innodb_flush_log_at_trx_commit")
    assert rows == [("utf8mb4", 0)]


@pytest.mark.mariadb
@pytest.mark.slow
def test_mariadb_cold_start_stop_and_restart_in_its_own_folder(
    mariadb_server: MariaDBServer, tmp_path: Path
) -> None:
    port, base = free_port(), tmp_path / "mariadb"
    try:
        server = start_mariadb(base, port)
        assert (base / "data" / "mysql").is_dir()
        server.execute("CREATE TABLE kept (n INT)", database="tracify")
        stop_mariadb(base)
        assert nothing_listens_on(port)
        stop_mariadb(base)  # stopping a stopped server is a no-op
        restarted = start_mariadb(base, port)
        assert restarted.execute("SELECT count(*) FROM kept", database="tracify") == [(0,)]
    finally:
        stop_mariadb(base)
    assert nothing_listens_on(port)


def test_mariadb_refuses_a_port_held_by_another_program(foreign_port: int, tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match="not MariaDB"):
        start_mariadb(tmp_path / "mariadb", foreign_port)


def test_missing_mariadb_binaries_are_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(mariadb, "MARIADB_BINDIRS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServiceUnavailable, match="mariadb-install-db is not installed"):
        start_mariadb(tmp_path / "mariadb", free_port())


@pytest.mark.postgres
def test_pgbouncer_pools_the_test_postgres_per_transaction(
    pgbouncer_server: PostgresServer,
) -> None:
    assert pgbouncer_server.port == PGBOUNCER_PORT
    assert query(pgbouncer_server, "SELECT current_database()") == "tracify"
    import psycopg

    with psycopg.connect(
        host=HOST, port=PGBOUNCER_PORT, user=pgbouncer_server.user, dbname="pgbouncer"
    ) as admin:
        admin.autocommit = True
        rows = admin.execute("SHOW CONFIG").fetchall()
    config = {row[0]: row[1] for row in rows}
    assert (config["pool_mode"], config["listen_addr"]) == ("transaction", HOST)


# --- Chromium -------------------------------------------------------------------------------


@pytest.mark.browser
def test_chromium_renders_a_page_with_the_house_flags(chromium_path: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(chromium_path, "--headless", *CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'p'}"),
            *("--dump-dom", "data:text/html,<p id=probe>tracify-ok</p>"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert '<p id="probe">tracify-ok</p>' in result.stdout


# --- the fixtures' policy -------------------------------------------------------------------


def test_a_missing_service_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL here"):
        skip_or_fail("no PostgreSQL here")


def test_a_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no PostgreSQL here"):
        skip_or_fail("no PostgreSQL here")
