"""The demo's processes: the shop (runserver), the receiver and the flusher, and their ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import requests

PROJECT_DIR = Path(__file__).resolve().parent
REPO_DIR = PROJECT_DIR.parent
MANAGE = PROJECT_DIR / "manage.py"
DEFAULT_DATABASE = REPO_DIR / ".demo" / "db.sqlite3"

HOST = "127.0.0.1"
SHOP_PORT = 8000
RECEIVER_PORT = 8765
API_KEY = "demo-key"  # the receiver's token; TRACIFY["API_KEY"] in demo_site/settings.py
ADMIN_LOGIN = ("admin", "admin")  # created by `manage.py demo_seed`
OUTBOX_ADMIN_PATH = "/admin/django_tracify/outboxevent/"
FLUSH_INTERVAL_SECONDS = 2
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
RECEIVE_TIMEOUT_SECONDS = 30.0

# The campaign the demo's customer lands from; the first event must carry it.
LANDING_PARAMS = {
    "utm_source": "newsletter",
    "utm_medium": "email",
    "utm_campaign": "spring-sale",
    "trc_mcmp_id": "demo-campaign",
}

Sink = Callable[[str], None]


class DemoError(Exception):
    """Something the person running the demo must fix or know; printed without a traceback."""


def say(line: str) -> None:
    print(line, flush=True)


# --- configuration and ports ----------------------------------------------------------------


@dataclass(frozen=True)
class DemoConfig:
    shop_port: int
    receiver_port: int
    database: Path

    @property
    def shop_url(self) -> str:
        return f"http://{HOST}:{self.shop_port}"

    @property
    def landing_url(self) -> str:
        return f"{self.shop_url}/?{urlencode(LANDING_PARAMS)}"

    @property
    def admin_url(self) -> str:
        return self.shop_url + OUTBOX_ADMIN_PATH

    @property
    def receiver_url(self) -> str:
        return f"http://{HOST}:{self.receiver_port}"

    def env(self) -> dict[str, str]:
        """The environment of every demo process: the shop's settings read it."""
        path = [str(REPO_DIR), str(PROJECT_DIR), os.environ.get("PYTHONPATH", "")]
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(part for part in path if part),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "demo_site.settings",
            "DEMO_DATABASE": str(self.database),
            "DEMO_RECEIVER_URL": self.receiver_url,
        }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def ensure_port_free(port: int, what: str, variable: str) -> None:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError as err:
            raise DemoError(
                f"{HOST}:{port} (the {what}) is busy ({err.strerror}): stop what listens "
                f"there, or choose another port, e.g. {variable}={port + 1} make demo"
            ) from None


def interactive_config() -> DemoConfig:
    try:
        shop_port = int(os.environ.get("DEMO_SHOP_PORT", SHOP_PORT))
        receiver_port = int(os.environ.get("DEMO_RECEIVER_PORT", RECEIVER_PORT))
    except ValueError as err:
        raise DemoError(f"DEMO_SHOP_PORT / DEMO_RECEIVER_PORT must be numbers: {err}") from None
    ensure_port_free(shop_port, "shop", "DEMO_SHOP_PORT")
    ensure_port_free(receiver_port, "receiver", "DEMO_RECEIVER_PORT")
    return DemoConfig(shop_port, receiver_port, DEFAULT_DATABASE)


# --- processes ------------------------------------------------------------------------------


class DemoProcess:
    """A child process whose output goes, line by line and prefixed, to a sink."""

    def __init__(self, name: str, command: list[str], config: DemoConfig, sink: Sink) -> None:
        self.name = name
        self.tail: deque[str] = deque(maxlen=40)
        # Its own session: Ctrl-C reaches only the launcher, which stops the children in order.
        self.popen = subprocess.Popen(
            command,
            cwd=REPO_DIR,
            env=config.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._relay, args=(sink,), name=f"demo-{name}-output", daemon=True
        )
        self._reader.start()

    def _relay(self, sink: Sink) -> None:
        assert self.popen.stdout is not None
        with self.popen.stdout:
            for line in self.popen.stdout:
                line = line.rstrip()
                self.tail.append(line)
                sink(f"[{self.name}] {line}")

    def output(self) -> str:
        return "\n".join(f"  {line}" for line in self.tail)

    def returncode(self) -> int | None:
        return self.popen.poll()

    def stop(self) -> int:
        """SIGTERM (SIGKILL if it is still running after a while); its exit code."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.tail.append(f"(still running {STOP_TIMEOUT_SECONDS:.0f} s after SIGTERM)")
                self.popen.kill()
                self.popen.wait()
        self._reader.join()
        return self.popen.returncode


def manage(config: DemoConfig, *args: str) -> str:
    """Run `manage.py <args>` for the demo shop; its output, or DemoError when it fails."""
    result = subprocess.run(
        [sys.executable, str(MANAGE), *args],
        cwd=REPO_DIR,
        env=config.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        raise DemoError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{output}")
    return output


def wait_until_serving(process: DemoProcess, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        code = process.returncode()
        if code is not None:
            raise DemoError(
                f"the {process.name} exited ({code}) while starting:\n{process.output()}"
            )
        try:
            requests.get(url, timeout=2)
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise DemoError(
                    f"the {process.name} did not answer {url} within "
                    f"{START_TIMEOUT_SECONDS:.0f} s:\n{process.output()}"
                ) from None
            time.sleep(0.2)
        else:
            return


class Demo:
    """The demo's processes: receiver, shop and (optionally) a flusher in loop mode.

    with Demo(config) as demo: migrates and seeds the database, starts them and waits until
    they answer; on leaving, stops them with SIGTERM and keeps their exit codes.
    """

    def __init__(self, config: DemoConfig, *, flusher: bool = True, sink: Sink = say) -> None:
        self.config = config
        self.with_flusher = flusher
        self.sink = sink
        self.processes: list[DemoProcess] = []
        self.exit_codes: dict[str, int] = {}

    def __enter__(self) -> Demo:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        config = self.config
        config.database.parent.mkdir(parents=True, exist_ok=True)
        self.sink("[demo] migrating and seeding " + str(config.database))
        manage(config, "migrate", "--noinput")
        self.sink("[demo] " + manage(config, "demo_seed"))
        receiver = self._spawn(
            "receiver",
            [
                *(sys.executable, "-m", "tracify_receiver"),
                *("--host", HOST, "--port", str(config.receiver_port), "--token", API_KEY),
            ],
        )
        wait_until_serving(receiver, config.receiver_url + "/api/v1/received")
        shop = self._spawn(
            "shop",
            [sys.executable, str(MANAGE), "runserver", "--noreload", f"{HOST}:{config.shop_port}"],
        )
        # An admin page: it records no pageview, so the receiver sees only customers.
        wait_until_serving(shop, config.shop_url + "/admin/login/")
        if self.with_flusher:
            interval = str(FLUSH_INTERVAL_SECONDS)
            self._spawn(
                "flusher",
                [sys.executable, str(MANAGE), "tracify_flush", "--loop", "--interval", interval],
            )

    def _spawn(self, name: str, command: list[str]) -> DemoProcess:
        process = DemoProcess(name, command, self.config, self.sink)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        while self.processes:
            process = self.processes.pop()
            self.exit_codes[process.name] = process.stop()

    def unclean_exits(self) -> list[str]:
        """The stopped processes that did not exit cleanly on SIGTERM."""
        # runserver has no SIGTERM handler: dying of the signal is its normal way to stop.
        clean = {"shop": (0, -signal.SIGTERM)}
        return [
            f"the {name} exited with {code} when stopped"
            for name, code in self.exit_codes.items()
            if code not in clean.get(name, (0,))
        ]

    def exited(self) -> list[DemoProcess]:
        """Processes that ended on their own (they should run until stopped)."""
        return [process for process in self.processes if process.returncode() is not None]

    def flush(self) -> str:
        """One `manage.py tracify_flush`: sends every pending event, then returns."""
        return manage(self.config, "tracify_flush")

    def received(self) -> dict[str, Any]:
        """The receiver's JSON: {"counters": {...}, "events": [accepted events, oldest first]}."""
        response = requests.get(self.config.receiver_url + "/api/v1/received", timeout=10)
        response.raise_for_status()
        received: dict[str, Any] = response.json()
        return received
