"""What the whole-request deadline costs per request, beside a plain requests.Session.

    .venv/bin/python benchmarks/request_deadline.py [--requests 500] [--rounds 5]

The local receiver (tracify_receiver, in this process's threads) answers every POST at once.
Each round sends --requests single-event POSTs with TracifyClient (a DeadlineAdapter and a
timer per request) and as many with a bare requests.Session, alternately (A B, then B A), and
prints the median milliseconds per request of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.conf import settings

settings.configure()

from django_tracify.delivery.client import TracifyClient, encode_body, encode_event  # noqa: E402
from tracify_receiver import Receiver  # noqa: E402

TOKEN = "bench-key"
EVENT = encode_event({"type": "pageview", "url": "https://shop.example.com/", "data": {}})


def with_deadline(endpoint: str, count: int) -> float:
    with TracifyClient(endpoint=endpoint, api_key=TOKEN, timeout=10) as client:
        started = time.perf_counter()
        for _ in range(count):
            client.post(encode_body([EVENT]))
        return (time.perf_counter() - started) / count * 1000


def plain(endpoint: str, count: int) -> float:
    with requests.Session() as session:
        session.headers.update({"tracify-token": TOKEN, "Content-Type": "application/json"})
        started = time.perf_counter()
        for _ in range(count):
            session.post(endpoint, data=encode_body([EVENT]), timeout=10, allow_redirects=False)
        return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    times: dict[str, list[float]] = {"deadline": [], "plain": []}
    with Receiver(token=TOKEN, host="127.0.0.1") as receiver:
        receiver.log = None
        for round_number in range(options.rounds):
            order = [("deadline", with_deadline), ("plain", plain)]
            for name, run in order if round_number % 2 == 0 else order[::-1]:
                times[name].append(run(receiver.endpoint, options.requests))
                receiver.clear()
    deadline_ms, plain_ms = (statistics.median(times[name]) for name in ("deadline", "plain"))
    print(f"TracifyClient with deadline: {deadline_ms:.3f} ms/request")
    print(f"plain requests.Session:      {plain_ms:.3f} ms/request")
    print(f"ratio: {deadline_ms / plain_ms:.2f}x")


if __name__ == "__main__":
    main()
