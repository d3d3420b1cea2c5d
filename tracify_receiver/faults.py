"""The fault plan: scripted answers, random faults and the poison marker."""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAULT_KINDS = (
    "ok",
    "status_false",
    "http_400",
    "http_401",
    "http_429",
    "http_500",
    "hang",
    "reset",
)
DEFAULT_MIX = ("http_500", "http_429", "reset", "status_false")
MAX_HANG_SECONDS = 60.0
CONTROL_KEYS = frozenset(
    {
        "script",
        "append",
        "fault_rate",
        "seed",
        "mix",
        "retry_after",
        "hang_seconds",
        "poison_marker",
    }
)


@dataclass(frozen=True)
class Fault:
    """One answer the receiver gives instead of (or, for "ok", as) its normal one."""

    kind: str
    retry_after: int = 1
    seconds: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if type(self.retry_after) is not int or self.retry_after < 0:
            raise ValueError(f"retry_after {self.retry_after!r} is not a whole number >= 0")
        if not _is_number(self.seconds) or not 0 <= self.seconds <= MAX_HANG_SECONDS:
            raise ValueError(f"hang seconds {self.seconds!r} is not within 0..{MAX_HANG_SECONDS:g}")

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "http_429":
            return {"kind": self.kind, "retry_after": self.retry_after}
        if self.kind == "hang":
            return {"kind": self.kind, "seconds": self.seconds}
        return {"kind": self.kind}


def parse_fault(spec: object) -> Fault:
    """A Fault from "http_500", {"kind": "http_429", "retry_after": 2} or a Fault."""
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, str):
        return Fault(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"kind", "retry_after", "seconds"}
        if unknown:
            raise ValueError(f"unknown fault keys: {', '.join(sorted(map(str, unknown)))}")
        return Fault(
            kind=spec.get("kind", ""),
            retry_after=spec.get("retry_after", 1),
            seconds=spec.get("seconds", 2.0),
        )
    raise ValueError(f"a fault is a kind name or an object with a kind, not {spec!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class FaultPlan:
    """Thread-safe: the handler threads draw from it while a test or /_control changes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._set_defaults()

    def _set_defaults(self) -> None:
        self._script: deque[Fault] = deque()
        self._rate = 0.0
        self._seed: int | None = None
        self._random = random.Random()
        self._mix: tuple[str, ...] = DEFAULT_MIX
        self._retry_after = 1
        self._hang_seconds = 2.0
        self._poison_marker: str | None = None

    def next_fault(self) -> Fault | None:
        """The fault for the next request to the events endpoint, or None for a normal answer."""
        with self._lock:
            if self._script:
                return self._script.popleft()
            if self._rate > 0 and self._random.random() < self._rate:
                kind = self._random.choice(self._mix)
                return Fault(kind, retry_after=self._retry_after, seconds=self._hang_seconds)
            return None

    def push(self, *faults: Fault | str | Mapping[str, Any]) -> None:
        """Append answers to the script; they are given first-in, first-out."""
        parsed = [parse_fault(fault) for fault in faults]
        with self._lock:
            self._script.extend(parsed)

    @property
    def poison_marker(self) -> str | None:
        with self._lock:
            return self._poison_marker

    def is_poisoned(self, event_json: str) -> bool:
        marker = self.poison_marker
        return marker is not None and marker in event_json

    def reset(self) -> None:
        """No script, no random faults, no poison marker."""
        with self._lock:
            self._set_defaults()

    def configure(self, control: Mapping[str, Any]) -> None:
        """Apply the fault keys of a /_control body; all or nothing, ValueError when invalid.

        Keys: script (replace), append, fault_rate (0..1), seed, mix (kinds), retry_after and
        hang_seconds (for random faults), poison_marker (a string, or null for none).
        """
        unknown = set(control) - CONTROL_KEYS
        if unknown:
            raise ValueError(f"unknown control keys: {', '.join(sorted(map(str, unknown)))}")
        script = _fault_list(control, "script")
        append = _fault_list(control, "append")
        rate = control.get("fault_rate")
        if rate is not None and (not _is_number(rate) or not 0 <= rate <= 1):
            raise ValueError(f"fault_rate {rate!r} is not a number within 0..1")
        seed = control.get("seed")
        if seed is not None and type(seed) is not int:
            raise ValueError(f"seed {seed!r} is not a whole number")
        mix = control.get("mix")
        if mix is not None:
            if not isinstance(mix, list) or not mix:
                raise ValueError("mix is not a non-empty list of fault kinds")
            for kind in mix:
                if not isinstance(kind, str):
                    raise ValueError(f"mix entry {kind!r} is not a fault kind name")
                Fault(kind)
        template = Fault(
            "hang",
            retry_after=control.get("retry_after", self._retry_after),
            seconds=control.get("hang_seconds", self._hang_seconds),
        )
        marker = control.get("poison_marker", self._poison_marker)
        if marker is not None and (not isinstance(marker, str) or not marker):
            raise ValueError("poison_marker is not a non-empty string or null")
        with self._lock:
            if script is not None:
                self._script = deque(script)
            self._script.extend(append or ())
            if rate is not None:
                self._rate = float(rate)
            if "seed" in control or rate is not None:
                self._seed = seed if "seed" in control else self._seed
                self._random = random.Random(self._seed)
            if mix is not None:
                self._mix = tuple(mix)
            self._retry_after = template.retry_after
            self._hang_seconds = template.seconds
            self._poison_marker = marker

    def config(self) -> dict[str, Any]:
        """The current plan, in the shape /_control accepts."""
        with self._lock:
            return {
                "script": [fault.to_dict() for fault in self._script],
                "fault_rate": self._rate,
                "seed": self._seed,
                "mix": list(self._mix),
                "retry_after": self._retry_after,
                "hang_seconds": self._hang_seconds,
                "poison_marker": self._poison_marker,
            }


def _fault_list(control: Mapping[str, Any], key: str) -> list[Fault] | None:
    if key not in control:
        return None
    specs = control[key]
    if not isinstance(specs, list):
        raise ValueError(f"{key} is not a list of faults")
    return [parse_fault(spec) for spec in specs]
