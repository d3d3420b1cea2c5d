"""How long a failing event lives under a retry schedule, and how late it arrives after an outage.

    .venv/bin/python benchmarks/retry_schedule.py [--events 10000] [--outage-hours 8]

Draws the schedule with django_tracify.delivery.backoff.retry_delay (the flusher's own function; no
database, no network) for events whose every attempt fails, and prints, for the old defaults
(MAX_ATTEMPTS 12) and the current ones (no attempt limit, MAX_AGE_SECONDS 7 days), with
BACKOFF_BASE_SECONDS 30 and BACKOFF_MAX_SECONDS 6 h:

- how long after its first failure an event becomes dead (p5, median, p95);
- for an outage of --outage-hours that starts with the event's first attempt: the share of
  events dead before Tracify is back, and the delay from its return to the next attempt.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django_tracify.delivery.backoff import retry_delay

BASE, CAP, MAX_AGE = 30.0, 6 * 3600.0, 7 * 86_400.0


def life(rng: random.Random, max_attempts: int | None, outage: float) -> tuple[float, float]:
    """(seconds from the first failure to dead, seconds from the outage's end to an attempt)."""
    now, attempts, back = 0.0, 0, None
    while True:
        attempts += 1  # an attempt at `now`
        if now >= outage and back is None:
            back = now - outage
        if (max_attempts is not None and attempts >= max_attempts) or now > MAX_AGE:
            return now, back if back is not None else float("inf")
        now += retry_delay(attempts, base=BASE, cap=CAP, rng=rng)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:7.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--outage-hours", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    outage = options.outage_hours * 3600
    for name, max_attempts in (("MAX_ATTEMPTS 12 (old)", 12), ("no attempt limit (now)", None)):
        rng = random.Random(options.seed)
        lives = [life(rng, max_attempts, outage) for _ in range(options.events)]
        dead_at = sorted(dead for dead, _ in lives)
        lost = sum(1 for dead, _ in lives if dead < outage) / len(lives)
        late = sorted(back for _, back in lives if back != float("inf"))
        cuts = statistics.quantiles(dead_at, n=20)
        print(
            f"{name}: dead after p5 {hours(cuts[0])}, median {hours(statistics.median(dead_at))}"
            f", p95 {hours(cuts[-1])}"
        )
        print(
            f"  {options.outage_hours:g} h outage: {lost:.1%} dead before Tracify is back", end=""
        )
        if late:
            print(
                f"; the others' next attempt after it: median {hours(statistics.median(late))}"
                f", max {hours(late[-1])}"
            )
        else:
            print()


if __name__ == "__main__":
    main()
