"""python -m tracify_receiver: serve a local Tracify events API until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from tracify_receiver.faults import FAULT_KINDS
from tracify_receiver.server import Receiver


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tracify_receiver",
        description="A local Tracify-compatible events API that validates and records events.",
        epilog=(
            "Point the shop at it: TRACIFY = {'ENDPOINT': 'http://127.0.0.1:8765/api/v1/events', "
            "'API_KEY': 'demo-key', ...} (the --host/--port and --token above; plain http needs "
            "DEBUG = True). A flush with another key gets 401 and stops."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument(
        "--token", default="demo-key", help="the tracify-token (TRACIFY['API_KEY']) to accept"
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="0..1, random faults")
    parser.add_argument("--seed", type=int, default=None, help="seed for random faults")
    parser.add_argument(
        "--fault-mix",
        default=None,
        help=f"comma-separated fault kinds for random faults, of: {', '.join(FAULT_KINDS)}",
    )
    parser.add_argument("--retry-after", type=int, default=None, help="for http_429 faults")
    parser.add_argument("--hang-seconds", type=float, default=None, help="for hang faults")
    parser.add_argument("--poison-marker", default=None, help="reject batches containing it")
    parser.add_argument("--quiet", action="store_true", help="no line per request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    control: dict[str, Any] = {"fault_rate": args.fault_rate, "seed": args.seed}
    if args.fault_mix:
        control["mix"] = [kind.strip() for kind in args.fault_mix.split(",") if kind.strip()]
    if args.retry_after is not None:
        control["retry_after"] = args.retry_after
    if args.hang_seconds is not None:
        control["hang_seconds"] = args.hang_seconds
    if args.poison_marker:
        control["poison_marker"] = args.poison_marker

    receiver = Receiver(args.token, args.host, args.port, log=None if args.quiet else _print)
    try:
        receiver.configure(control)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        receiver.start()
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        return 2
    try:
        _print(f"Tracify receiver on {receiver.url}/")
        _print(f"  events endpoint: {receiver.endpoint}")
        _print(f"  received (JSON): {receiver.url}/api/v1/received")
        _print(f"  fault control:   {receiver.control_url}")
        # A bounded wait keeps the main thread returning to Python to run signal handlers.
        while not stop.wait(0.5):
            pass
    finally:
        receiver.stop()
    return 0


def _print(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
