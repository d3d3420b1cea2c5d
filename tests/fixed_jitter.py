"""Random sources whose jitter is always the top, or always the bottom, of its range."""

from __future__ import annotations

import random


class Highest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a
