"""System checks for the TRACIFY settings; every check id lives in MESSAGES."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections

from django_tracify.capture.client_ip import proxy_settings_problem
from django_tracify.conf import DEFAULTS, settings
from django_tracify.outbox.claiming import can_claim_concurrently

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
        "The outbox database {alias!r} ({vendor}) cannot claim rows safely: it has no "
        "SELECT ... FOR UPDATE.",
        "Use PostgreSQL, MariaDB >= 10.6, MySQL >= 8.0.1 or SQLite for the outbox (see the "
        "README's table of databases), e.g. as its own alias through TRACIFY['DATABASE'].",
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
        "TRACIFY['FLUSH_ON_PURCHASE'] is on, but {problem}.",
        "It enqueues django_tracify.django_tasks.flush_outbox after each purchase: use "
        "Django 6+ (or django-tasks on 5.2) with a queue backend in TASKS (e.g. django-tasks-db), "
        "or turn it off.",
    ),
    "tracify.E010": (
        checks.Error,
        "TRACIFY['LEASE_SECONDS'] = {lease!r} leaves no room for a request of "
        "TRACIFY['TIMEOUT'] = {timeout!r}: nothing would ever be sent.",
        "A flusher starts no request that could outlive its lease, so make LEASE_SECONDS at "
        "least {factor} x TIMEOUT (the defaults are 300 and 10).",
    ),
    "tracify.E011": (
        checks.Error,
        "TRACIFY['PROMETHEUS'] is on, but prometheus-client is not installed.",
        "pip install 'django-tracify[prometheus]', or turn TRACIFY['PROMETHEUS'] off.",
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
    "tracify.W003": (
        checks.Warning,
        "Tracking is off: TRACIFY['API_KEY'] is not set and TRACIFY['ENABLED'] is False.",
        "No event is recorded or sent. Set the key (e.g. the TRACIFY_API_KEY environment "
        "variable of the README's settings) and CUSTOMER_SITE_ID to turn tracking on.",
    ),
    "tracify.W004": (
        checks.Warning,
        "TracifyMiddleware comes before {other} in MIDDLEWARE.",
        "Put django_tracify.middleware.TracifyMiddleware after {other}: before it, "
        "request.{attribute} does not exist yet, so logged-in visitors' emails are missing "
        "from their pageviews.",
    ),
    "tracify.W005": (
        checks.Warning,
        "The outbox database {alias!r} has no {missing} in its DATABASES OPTIONS: if it stops "
        "answering, every page waits for it.",
        "Bound each outbox write, e.g. DATABASES[{alias!r}]['OPTIONS'] = {example}; see the "
        "README, 'Scaling out'. Silence it if the server or role sets them already.",
    ),
    "tracify.W006": (
        checks.Warning,
        "The outbox database {alias!r} is MariaDB {version}, without SKIP LOCKED.",
        "Flushers wait for each other's claims instead of passing them by; upgrade to "
        "MariaDB 10.6 or later to run several at once.",
    ),
}

TRACIFY_MIDDLEWARE = "django_tracify.middleware.TracifyMiddleware"
# The middlewares whose request attributes the pageview reads, and the attribute each sets.
MIDDLEWARE_BEFORE_TRACIFY = {
    "django.contrib.sessions.middleware.SessionMiddleware": "session",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "user",
}

# A lease must fit a whole request and the rest of a batch's work around it.
LEASE_PER_TIMEOUT = 2

# Numbers that may be None (no limit, or off).
OPTIONAL_NUMBERS = frozenset({"MAX_ATTEMPTS", "PROMETHEUS_PORT"})

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
    "PROMETHEUS_PORT": (1, 65_535),
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
    elif not raw.get("API_KEY"):
        yield message("tracify.W003")
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
            "tracify.E010",
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
    if settings.FLUSH_ON_PURCHASE:
        yield from _flush_on_purchase_messages()
    if settings.PROMETHEUS and not prometheus_installed():
        yield message("tracify.E011")


def prometheus_installed() -> bool:
    return importlib.util.find_spec("prometheus_client") is not None


def _flush_on_purchase_messages() -> Iterator[checks.CheckMessage]:
    try:
        from django_tracify.django_tasks import ImmediateBackend, flush_outbox

        backend = flush_outbox.get_backend()
    except Exception as err:
        yield message("tracify.E009", problem=f"the flush task is not usable: {err}")
        return
    if isinstance(backend, ImmediateBackend):
        problem = f"the task backend {flush_outbox.backend!r} would flush inside the request"
        yield message("tracify.E009", problem=problem)


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


def check_middleware(**kwargs: Any) -> list[checks.CheckMessage]:
    middleware = list(getattr(django_settings, "MIDDLEWARE", None) or [])
    if TRACIFY_MIDDLEWARE not in middleware:
        return []
    position = middleware.index(TRACIFY_MIDDLEWARE)
    return [
        message("tracify.W004", other=other.rsplit(".", 1)[1], attribute=attribute)
        for other, attribute in MIDDLEWARE_BEFORE_TRACIFY.items()
        if other in middleware[position + 1 :]
    ]


# vendor -> (the DATABASES OPTIONS that bound an outbox write, an example setting them all)
TIMEOUT_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "postgresql": (
        ("connect_timeout", "statement_timeout"),
        '{"connect_timeout": 3, "options": "-c statement_timeout=3000"}',
    ),
    "mysql": (
        ("connect_timeout", "read_timeout", "write_timeout"),
        '{"connect_timeout": 3, "read_timeout": 3, "write_timeout": 3}',
    ),
}


def _is_set(name: str, options: dict[str, Any]) -> bool:
    # PostgreSQL's server settings arrive as "-c name=value" in OPTIONS["options"].
    return name in options or name in str(options.get("options", ""))


def check_outbox_timeouts(**kwargs: Any) -> list[checks.CheckMessage]:
    """An outbox database of its own: a bounded wait for each write (the shop's own database
    needs the same, but that is the shop's concern)."""
    alias = settings.DATABASE
    if alias in (None, "default") or alias not in django_settings.DATABASES:
        return []
    vendor = connections[alias].vendor
    if vendor not in TIMEOUT_OPTIONS:
        return []
    wanted, example = TIMEOUT_OPTIONS[vendor]
    options = connections[alias].settings_dict.get("OPTIONS") or {}
    missing = [name for name in wanted if not _is_set(name, options)]
    if not missing:
        return []
    return [message("tracify.W005", alias=alias, missing=" or ".join(missing), example=example)]


def check_database(**kwargs: Any) -> list[checks.CheckMessage]:
    alias = settings.DATABASE
    if alias is not None and alias not in django_settings.DATABASES:
        return [message("tracify.E006", value=alias)]
    alias = alias or "default"
    connection = connections[alias]
    if connection.vendor == "sqlite":
        if settings.FLUSHERS > 1:
            return [message("tracify.W002", value=settings.FLUSHERS)]
        return []
    try:
        # MySQL's features depend on the server's version: this may connect.
        features = connection.features
        if not can_claim_concurrently(connection):
            return [message("tracify.E007", alias=alias, vendor=connection.vendor)]
        if connection.vendor == "mysql" and not features.has_select_for_update_skip_locked:
            version = ".".join(map(str, connection.mysql_version))  # type: ignore[attr-defined]
            return [message("tracify.W006", alias=alias, version=version)]
    except DatabaseError:
        return []  # unreachable: the command that ran the checks says so itself
    return []
