"""`make demo`: the example shop, a local Tracify receiver and a flusher, all on this machine.

    python example_project/demo.py                  # runs until Ctrl-C
    DEMO_SCRIPTED=1 python example_project/demo.py  # a scripted customer journey; exit 0 or 1

Interactive mode listens on 127.0.0.1:8000 (shop) and 127.0.0.1:8765 (receiver); set
DEMO_SHOP_PORT / DEMO_RECEIVER_PORT to move them. Its SQLite database is .demo/db.sqlite3.
Scripted mode uses free ports and a throw-away database, so it can run anywhere, e.g. in CI.
The test tests/test_demo_e2e.py drives the same processes with Chromium through `Demo`.
"""

from __future__ import annotations

import html
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType, TracebackType
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

LANDING_PARAMS = {
    "utm_source": "newsletter",
    "utm_medium": "email",
    "utm_campaign": "spring-sale",
    "trc_mcmp_id": "demo-campaign",
}
CUSTOMER_EMAIL = "Ada.Lovelace@example.com"
# Bot user agents get no pageviews (TRACIFY["TRACK_BOTS"] is off), and a headless browser or
# python-requests looks like a bot: the scripted customers present an ordinary desktop browser.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
JOURNEY_TYPES = ("pageview", "productview", "addtocart", "purchase")

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


# --- the scripted customer and what the receiver must have got -------------------------------


@dataclass(frozen=True)
class Item:
    title: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Journey:
    """What a customer did and saw: what Tracify must receive about it."""

    email: str
    order_number: str
    items: tuple[Item, ...]
    shipping: Decimal
    currency: str = "EUR"

    @property
    def amount(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), self.shipping)

    def purchase_data(self) -> dict[str, str]:
        data = {
            "order_id": self.order_number,
            "currency": self.currency,
            "amount": f"{self.amount:.2f}",
        }
        for number, item in enumerate(self.items, start=1):
            data[f"ITEM{number}"] = item.title
            data[f"AMT{number}"] = f"{item.unit_price:.2f}"
            data[f"QTY{number}"] = str(item.quantity)
        return data


def _find(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise DemoError(f"the shop's page has no {what} (pattern {pattern!r})")
    return html.unescape(match.group(1))


def _csrf_token(page: str) -> str:
    return _find(r'name="csrfmiddlewaretoken" value="([^"]+)"', page, "CSRF token")


def scripted_journey(shop_url: str, email: str = CUSTOMER_EMAIL) -> Journey:
    """Land with campaign parameters, view two products, add them to the cart, check out."""
    http = requests.Session()
    http.headers["User-Agent"] = BROWSER_USER_AGENT

    def fetch(method: str, path: str, **kwargs: Any) -> str:
        response = http.request(method, shop_url + path, timeout=10, **kwargs)
        if response.status_code != 200:
            raise DemoError(f"{method} {path} answered {response.status_code}")
        return response.text

    landing = fetch("GET", "/?" + urlencode(LANDING_PARAMS))
    product_paths = re.findall(r'class="card" href="(/products/[^"]+/)"', landing)
    if len(product_paths) < 2:
        raise DemoError("the product list shows fewer than 2 products: was demo_seed run?")
    items = []
    for path, quantity in ((product_paths[0], 2), (product_paths[1], 1)):
        page = fetch("GET", path)
        action = _find(r'<form method="post" action="([^"]+)"', page, "add-to-cart form")
        fetch("POST", action, data={"quantity": quantity, "csrfmiddlewaretoken": _csrf_token(page)})
        items.append(
            Item(
                title=_find(r"<h1>(.*?)</h1>", page, "product name"),
                quantity=quantity,
                unit_price=Decimal(_find(r'data-price="([^"]+)"', page, "price")),
            )
        )
    checkout = fetch("GET", "/checkout/")
    thanks = fetch(
        "POST", "/checkout/", data={"email": email, "csrfmiddlewaretoken": _csrf_token(checkout)}
    )
    return Journey(
        email=email,
        order_number=_find(r'data-order-number="([^"]+)"', thanks, "order number"),
        items=tuple(items),
        shipping=Decimal(_find(r'data-shipping="([^"]+)"', checkout, "shipping")),
    )


def session_of(event: dict[str, Any]) -> str | None:
    """The visitor's session key (identity kind 2) in an event."""
    return next((key for key, kind in event["identity_data"].items() if kind == 2), None)


def journey_events(received: dict[str, Any], journey: Journey) -> list[dict[str, Any]]:
    """The accepted events of the journey's visitor, oldest first ([] before the purchase)."""
    events: list[dict[str, Any]] = received["events"]
    purchase = next(
        (
            event
            for event in events
            if event["type"] == "purchase" and event["data"].get("order_id") == journey.order_number
        ),
        None,
    )
    if purchase is None:
        return []
    session = session_of(purchase)
    return [event for event in events if session_of(event) == session]


def check_received(received: dict[str, Any], journey: Journey) -> list[str]:
    """What is missing or wrong in what the receiver accepted about the journey; [] if all ok."""
    from django_tracify.identity import hash_email

    problems = []
    rejected = received["counters"]["rejected"]
    if rejected:
        problems.append(f"the receiver rejected {rejected} request(s); see its page")
    events = journey_events(received, journey)
    if not events:
        return [*problems, f"no purchase with order_id {journey.order_number!r} was received"]
    counts = {kind: sum(event["type"] == kind for event in events) for kind in JOURNEY_TYPES}
    expected_counts = {
        "productview": len(journey.items),
        "addtocart": len(journey.items),
        "purchase": 1,
    }
    if counts["pageview"] == 0:
        problems.append("no pageview was received")
    for kind, expected in expected_counts.items():
        if counts[kind] != expected:
            problems.append(f"{counts[kind]} {kind} event(s) received, expected {expected}")
    purchase = next(event for event in events if event["type"] == "purchase")
    for key, value in journey.purchase_data().items():
        if purchase["data"].get(key) != value:
            problems.append(f"purchase {key} is {purchase['data'].get(key)!r}, expected {value!r}")
    if purchase["identity_data"].get(hash_email(journey.email)) != 1:
        problems.append("the purchase does not carry the hash of the customer's email (kind 1)")
    first = events[0]
    for name, value in LANDING_PARAMS.items():
        if first["data"].get(name) != value:
            problems.append(
                f"the first event ({first['type']}) has {name}={first['data'].get(name)!r}, "
                f"expected {value!r} from the landing URL"
            )
    return problems


def describe_events(events: list[dict[str, Any]]) -> Iterator[str]:
    """One line per event: type, URL, and its data except origin and Referer."""
    for event in events:
        data = {k: v for k, v in event["data"].items() if k not in ("origin", "Referer")}
        kinds = sorted(event["identity_data"].values())
        details = " ".join(f"{key}={value}" for key, value in data.items())
        yield f"  {event['type']:<12} {event['url']:<52} identity kinds {kinds} {details}"


# --- the two modes --------------------------------------------------------------------------


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (e.g. from a CI runner) stops the demo as cleanly as Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_interactive() -> int:
    config = interactive_config()
    with Demo(config) as demo:
        say(
            f"""
django-tracify demo: every step in the shop becomes an event in the outbox, a flusher sends
them every {FLUSH_INTERVAL_SECONDS} s to a local receiver that checks them like Tracify's API.

  Shop             {config.landing_url}
                   (the campaign parameters are carried by the first event)
  Outbox (admin)   {config.admin_url}
                   log in as {ADMIN_LOGIN[0]} / {ADMIN_LOGIN[1]}
  Receiver         {config.receiver_url}/   (JSON: {config.receiver_url}/api/v1/received)

Press Ctrl-C to stop.
"""
        )
        try:
            while not (ended := demo.exited()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            say("\n[demo] stopping ...")
            return 0
        for process in ended:
            say(f"[demo] the {process.name} stopped ({process.returncode()}):\n{process.output()}")
        return 1


def run_scripted() -> int:
    with tempfile.TemporaryDirectory(prefix="tracify-demo-") as folder:
        config = DemoConfig(free_port(), free_port(), Path(folder) / "db.sqlite3")
        with Demo(config) as demo:
            say(f"[demo] a customer lands on {config.landing_url}")
            journey = scripted_journey(config.shop_url)
            say(
                f"[demo] ... viewed and added {len(journey.items)} products, placed order "
                f"{journey.order_number} ({journey.amount} {journey.currency}); "
                f"waiting for the flusher to deliver"
            )
            deadline = time.monotonic() + RECEIVE_TIMEOUT_SECONDS
            while (problems := check_received(received := demo.received(), journey)) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.5)
        problems += demo.unclean_exits()
    counters = received["counters"]
    say(
        f"\nThe receiver accepted {counters['accepted']} event(s) in {counters['requests']} "
        f"request(s), {counters['rejected']} rejected:"
    )
    for line in describe_events(received["events"]):
        say(line)
    if problems:
        say("\nFAILED:\n" + "\n".join(f"  - {problem}" for problem in problems))
        return 1
    say(
        f"\nOK: {', '.join(JOURNEY_TYPES)} arrived with order {journey.order_number}, "
        f"{journey.amount} {journey.currency}, {len(journey.items)} items, the hashed email "
        f"and the landing URL's parameters on the first event."
    )
    return 0


def main() -> int:
    scripted = os.environ.get("DEMO_SCRIPTED", "").strip().lower() not in ("", "0", "false", "no")
    # A launcher started in the background ignores SIGINT: make Ctrl-C (kill -INT) stop it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigterm_as_ctrl_c():
            return run_scripted() if scripted else run_interactive()
    except DemoError as err:
        say(f"demo: {err}")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
