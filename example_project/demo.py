"""`make demo`: the example shop, a local Tracify receiver and a flusher, all on this machine.

    python example_project/demo.py                  # runs until Ctrl-C
    DEMO_SCRIPTED=1 python example_project/demo.py  # a scripted customer journey; exit 0 or 1

Interactive mode listens on 127.0.0.1:8000 (shop) and 127.0.0.1:8765 (receiver); set
DEMO_SHOP_PORT / DEMO_RECEIVER_PORT to move them. Its SQLite database is .demo/db.sqlite3.
Scripted mode uses free ports and a throw-away database, so it can run anywhere, e.g. in CI.
The test tests/e2e/test_demo_e2e.py drives the same processes with Chromium through `Demo`.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

REPO_DIR = Path(__file__).resolve().parent.parent
# Run as a script (`make demo`), this folder is on sys.path but the repository is not.
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from example_project.demo_journey import (  # noqa: E402
    JOURNEY_TYPES,
    check_received,
    describe_events,
    scripted_journey,
)
from example_project.demo_processes import (  # noqa: E402
    ADMIN_LOGIN,
    FLUSH_INTERVAL_SECONDS,
    RECEIVE_TIMEOUT_SECONDS,
    Demo,
    DemoConfig,
    DemoError,
    free_port,
    interactive_config,
    say,
)

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
