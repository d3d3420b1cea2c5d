"""How long a failed event waits before its next attempt."""

from __future__ import annotations

import random

# 2**62 times any sane base already exceeds every cap; larger powers overflow a float.
_MAX_EXPONENT = 62


def retry_delay(
    attempts: int,
    *,
    base: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after `attempts` failed attempts (1 for the first failure).

    Exponential backoff with full jitter (uniform between 0 and min(cap, base * 2**(n-1))), so
    many flushers that failed together do not retry together; never sooner than Retry-After,
    which is itself honoured up to `cap` (a broken header must not park events for years).
    """
    exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
    ceiling = min(cap, base * 2**exponent)
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
