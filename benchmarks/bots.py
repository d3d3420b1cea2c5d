"""Crawler detection on long user agents: the whole agent vs the bounded prefix is_bot checks.

    .venv/bin/python benchmarks/bots.py [--length 8192] [--runs 200]

Each run makes a fresh, unique browser-like user agent of --length characters (so no cache
answers), and times crawlerdetect on all of it and django_tracify.capture.bots.is_bot on it,
in turn.
Prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_tracify.capture.bots import MAX_USER_AGENT_CHECKED, _detector, is_bot

BROWSER = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36 "
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    whole: list[float] = []
    bounded: list[float] = []
    for run in range(args.runs):
        agent = f"{run:08d} " + (BROWSER * (args.length // len(BROWSER) + 1))
        agent = agent[: args.length]
        started = time.perf_counter()
        _detector.is_crawler(agent)
        whole.append(time.perf_counter() - started)
        started = time.perf_counter()
        is_bot(agent)
        bounded.append(time.perf_counter() - started)
    full_ms = statistics.median(whole) * 1000
    prefix_ms = statistics.median(bounded) * 1000
    print(f"user agent of {args.length} characters, {args.runs} runs, medians:")
    print(f"  crawlerdetect on all of it:          {full_ms:8.3f} ms")
    print(f"  is_bot (first {MAX_USER_AGENT_CHECKED} characters):     {prefix_ms:8.3f} ms")
    print(f"  ratio: {full_ms / prefix_ms:.1f}x")


if __name__ == "__main__":
    main()
