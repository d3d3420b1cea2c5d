"""System checks for the TRACIFY settings; every check id lives in MESSAGES."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from django_tracify.client_ip import proxy_settings_problem
from django_tracify.conf import DEFAULTS, settings

# id -> (level, message, hint). Messages may be formatted with the offending key/value.
MESSAGES: dict[str, tuple[Callable[..., checks.CheckMessage], str, str]] = {
    "tracify.E001": (
        checks.Error,
        "TRACIFY['API_KEY'] is not set.",
        "Set it to the API key from your Tracify account manager, e.g. from an environment "
        "variable, or set TRACIFY['ENABLED'] = False.",
    ),
    "tracify.E002": (
        checks.Error,
        "TRACIFY['CUSTOMER_SITE_ID'] is {problem}.",
        "Set it to the customer site id (CSID, a UUID) Tracify gave you.",
    ),
    "tracify.E003": (
        checks.Error,
        "TRACIFY['ENDPOINT'] = {value!r} {problem}.",
        "Use an https:// URL such as the default https://api.tracify.ai/api/v1/events; "
        "plain http is only accepted with DEBUG = True (for a local receiver).",
    ),
    "tracify.E004": (
        checks.Error,
        "TRACIFY['{key}'] = {value!r} is out of range: {problem}.",
        "Remove the key to use the default ({default!r}).",
    ),
    "tracify.E005": (
        checks.Error,
        "TRACIFY['{key}'] is not usable: {problem}",
        "Give a callable or the dotted path of one.",
    ),
    "tracify.E006": (
        checks.Error,
        "TRACIFY['DATABASE'] = {value!r} is not a key of settings.DATABASES.",
        "Name a configured database alias, or remove the key to use the default database.",
    ),
    "tracify.E007": (
        checks.Error,
        "The outbox database {alias!r} ({vendor}) cannot claim rows safely.",
        "Use PostgreSQL (SKIP LOCKED) or SQLite; other backends are not supported.",
    ),
    "tracify.E008": (
        checks.Error,
        "TRACIFY['TRUSTED_PROXIES'] is not usable: {problem}.",
        "List the proxies that append to X-Forwarded-For, one per hop, outermost first: IP "
        'addresses, CIDR networks or prefixes on octet boundaries ("10.1."). Until then no '
        "request gets a context: nothing is tracked.",
    ),
    "tracify.E009": (
        checks.Error,
        "TRACIFY['LEASE_SECONDS'] = {lease!r} leaves no room for a request of "
        "TRACIFY['TIMEOUT'] = {timeout!r}: nothing would ever be sent.",
        "A flusher starts no request that could outlive its lease, so make LEASE_SECONDS at "
        "least {factor} x TIMEOUT (the defaults are 300 and 10).",
    ),
    "tracify.W001": (
        checks.Warning,
        "TRACIFY has unknown key {key!r}.",
        "Check the spelling against the settings table in the README; it is ignored.",
    ),
    "tracify.W002": (
        checks.Warning,
        "TRACIFY['FLUSHERS'] = {value} with the outbox on SQLite.",
        "SQLite has no SKIP LOCKED: run a single flusher, or use PostgreSQL for the outbox.",
    ),
}

# A lease must fit a whole request and the rest of a batch's work around it.
LEASE_PER_TIMEOUT = 2

# Numbers that may be None (no limit).
OPTIONAL_NUMBERS = frozenset({"MAX_ATTEMPTS"})

# key -> (minimum, maximum or None)
NUMBER_RANGES: dict[str, tuple[float, float | None]] = {
    "TIMEOUT": (0.1, 300),
    "BATCH_SIZE": (1, 10_000),
    "MAX_BODY_BYTES": (1_024, 100_000_000),
    "MAX_ATTEMPTS": (1, 1_000),
    "MAX_AGE_SECONDS": (60, None),
    "BACKOFF_BASE_SECONDS": (0, None),
    "BACKOFF_MAX_SECONDS": (0, None),
    "LEASE_SECONDS": (5, None),
    "RETENTION_DAYS": (0, None),
    "DEAD_RETENTION_DAYS": (0, None),
    "TRUSTED_PROXY_COUNT": (0, 20),
    "FLUSHERS": (1, 1_000),
}


def message(check_id: str, **values: Any) -> checks.CheckMessage:
    level, text, hint = MESSAGES[check_id]
    return level(text.format(**values), hint=hint.format(**values), id=check_id)


def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    try:
        raw = settings.raw
    except ImproperlyConfigured as err:
        return [checks.Error(str(err), hint="TRACIFY = {'API_KEY': ...}", id="tracify.E004")]
    return list(_settings_messages(raw))


def _settings_messages(raw: dict[str, Any]) -> Iterator[checks.CheckMessage]:
    for key in sorted(set(raw) - set(DEFAULTS)):
        yield message("tracify.W001", key=key)
    if settings.ENABLED:
        if not raw.get("API_KEY"):
            yield message("tracify.E001")
        yield from _csid_messages(raw.get("CUSTOMER_SITE_ID"))
    yield from _endpoint_messages(settings.ENDPOINT)
    ranges_ok = True
    for key, (low, high) in NUMBER_RANGES.items():
        value = raw.get(key, DEFAULTS[key])
        if value is None and key in OPTIONAL_NUMBERS:
            continue
        for problem in _range_messages(key, value, low, high):
            ranges_ok = False
            yield problem
    if ranges_ok and settings.LEASE_SECONDS < LEASE_PER_TIMEOUT * settings.TIMEOUT:
        yield message(
            "tracify.E009",
            lease=raw.get("LEASE_SECONDS", DEFAULTS["LEASE_SECONDS"]),
            timeout=raw.get("TIMEOUT", DEFAULTS["TIMEOUT"]),
            factor=LEASE_PER_TIMEOUT,
        )
    for key in ("ORDER_ADAPTER", "CONSENT"):
        try:
            getattr(settings, key)
        except ImproperlyConfigured as err:
            yield message("tracify.E005", key=key, problem=err)
    yield from _proxy_messages(raw.get("TRUSTED_PROXIES", DEFAULTS["TRUSTED_PROXIES"]))


def _proxy_messages(value: Any) -> Iterator[checks.CheckMessage]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        yield message("tracify.E008", problem=f"{value!r} is not a list or tuple")
        return
    problem = proxy_settings_problem()
    if problem:
        yield message("tracify.E008", problem=problem.rstrip("."))


def _csid_messages(value: Any) -> Iterator[checks.CheckMessage]:
    if not value:
        yield message("tracify.E002", problem="not set")
        return
    try:
        uuid.UUID(str(value))
    except ValueError:
        yield message("tracify.E002", problem=f"{value!r}, not a UUID")


def _endpoint_messages(value: str) -> Iterator[checks.CheckMessage]:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        yield message("tracify.E003", value=value, problem="is not an http(s) URL")
    elif parts.scheme == "http" and not django_settings.DEBUG:
        yield message("tracify.E003", value=value, problem="is not https while DEBUG is False")


def _range_messages(
    key: str, value: Any, low: float, high: float | None
) -> Iterator[checks.CheckMessage]:
    default = DEFAULTS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        yield message("tracify.E004", key=key, value=value, problem="not a number", default=default)
    elif value < low or (high is not None and value > high):
        problem = f"allowed {low}..{high if high is not None else 'any'}"
        yield message("tracify.E004", key=key, value=value, problem=problem, default=default)


def check_database(**kwargs: Any) -> list[checks.CheckMessage]:
    alias = settings.DATABASE
    if alias is not None and alias not in django_settings.DATABASES:
        return [message("tracify.E006", value=alias)]
    alias = alias or "default"
    vendor = connections[alias].vendor
    if vendor not in ("postgresql", "sqlite"):
        return [message("tracify.E007", alias=alias, vendor=vendor)]
    if vendor == "sqlite" and settings.FLUSHERS > 1:
        return [message("tracify.W002", value=settings.FLUSHERS)]
    return []
