"""nginx -> gunicorn or uvicorn over a unix socket: REMOTE_ADDR is empty, X-Forwarded-For
(nginx's $proxy_add_x_forwarded_for) is where the visitor's address is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from django_tracify.events.identity import hash_identity
from django_tracify.models import OutboxEvent
from tests import unix_socket_http
from tests.conftest import BROWSER_UA
from tests.process_fixtures import OutboxDatabase, Processes, wait_until
from tests.services import REPO_ROOT

pytestmark = pytest.mark.django_db

VISITOR = "198.51.100.20"
SPOOFED = '6.6.6.6, 7.7.7.7, "'
SERVERS = {
    "gunicorn": ["-m", "gunicorn", "--workers", "1", "--no-control-socket"],
    "uvicorn": ["-m", "uvicorn", "--factory", "--workers", "1", "--no-proxy-headers"],
}
APPS = {
    "gunicorn": "django.core.wsgi:get_wsgi_application()",
    "uvicorn": "django.core.asgi:get_asgi_application",
}


def bind(server: str, path: Path) -> list[str]:
    return ["--bind", f"unix:{path}"] if server == "gunicorn" else ["--uds", str(path)]


def get_over(path: Path, target: str, forwarded_for: str) -> int:
    """GET `target` over the unix socket as nginx sends it on: one X-Forwarded-For header."""
    headers = {"Host": "shop.example.com", "User-Agent": BROWSER_UA}
    return unix_socket_http.get(path, target, {**headers, "X-Forwarded-For": forwarded_for}, 30)


@pytest.mark.slow
@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_behind_nginx_on_a_unix_socket_the_visitor_is_the_address_nginx_appended(
    server: str, processes: Processes, sqlite_outbox: OutboxDatabase, tmp_path: Path
) -> None:
    sock = tmp_path / "shop.sock"
    env = {
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.site_settings",
        "TRACIFY_TEST_DATABASE": json.dumps(sqlite_outbox.config),
        "TRACIFY_TEST_ENDPOINT": "http://127.0.0.1:9/api/v1/events",
        "TRACIFY_TEST_API_KEY": "unused",
        "TRACIFY_TEST_OVERRIDES": json.dumps({"TRUSTED_PROXY_COUNT": 1}),
        "PATH": str(Path(sys.executable).parent),
    }
    site = processes.start(
        server, [sys.executable, *SERVERS[server], *bind(server, sock), APPS[server]], env
    )
    wait_until(lambda: unix_socket_http.accepts(sock), 60, site.output)

    assert get_over(sock, "/page/", f"{SPOOFED}, {VISITOR}") == 200
    rows = OutboxEvent.objects.using(sqlite_outbox.alias)
    wait_until(rows.exists, 30, site.output)
    [pageview] = rows.all()
    identity_data = pageview.payload["identity_data"]
    assert identity_data[hash_identity(VISITOR)] == 3
    assert identity_data[hash_identity(f"{VISITOR}|{BROWSER_UA}")] == 2
    assert hash_identity("") not in identity_data
    assert hash_identity("6.6.6.6") not in identity_data
