from __future__ import annotations

import random

from django_tracify.delivery.backoff import retry_delay
from tests.fixed_jitter import Highest, Lowest


def test_the_ceiling_doubles_per_attempt_and_is_capped() -> None:
    delays = [retry_delay(n, base=30, cap=300, rng=Highest()) for n in range(1, 7)]
    assert delays == [30, 60, 120, 240, 300, 300]


def test_full_jitter_spreads_retries_from_zero_to_the_ceiling() -> None:
    rng = random.Random(4)
    delays = [retry_delay(3, base=10, cap=1000, rng=rng) for _ in range(200)]
    assert all(0 <= delay <= 40 for delay in delays)
    assert min(delays) < 5 and max(delays) > 35  # spread, not clumped
    assert retry_delay(3, base=10, cap=1000, rng=Lowest()) == 0


def test_never_sooner_than_retry_after() -> None:
    assert retry_delay(1, base=30, cap=3600, rng=Lowest(), retry_after=120) == 120
    assert retry_delay(5, base=30, cap=3600, rng=Highest(), retry_after=120) == 480


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    assert retry_delay(1, base=30, cap=3600, rng=Lowest(), retry_after=10**9) == 3600


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert retry_delay(10_000, base=30, cap=21600, rng=Highest()) == 21600
