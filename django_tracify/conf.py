"""The TRACIFY settings dict, read through one typed property per key.

Each key is worked out once and kept until Django says TRACIFY or DEBUG changed
(override_settings in tests), so the request path reads a plain attribute.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, cast

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULT_ENDPOINT = "https://api.tracify.ai/api/v1/events"

DEFAULT_EXCLUDE_PATHS: tuple[str, ...] = (
    "/admin/",
    "/static/",
    "/media/",
    "/favicon.ico",
    "/robots.txt",
    "/health",
    "/healthz",
    "/ready",
    "/readyz",
    "/livez",
    "/__debug__/",
)

DEFAULT_EXCLUDE_URL_PARAMS: tuple[str, ...] = (
    "email",
    "mail",
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "code",
    "auth",
    "key",
    "session",
)

DEFAULTS: dict[str, Any] = {
    "API_KEY": None,
    "CUSTOMER_SITE_ID": None,
    "ENDPOINT": DEFAULT_ENDPOINT,
    "ENABLED": True,
    "TIMEOUT": 10.0,
    "BATCH_SIZE": 100,
    "MAX_BODY_BYTES": 1_000_000,
    "MAX_ATTEMPTS": None,  # no limit: MAX_AGE_SECONDS decides when an event is given up
    "MAX_AGE_SECONDS": 7 * 24 * 3600,
    "BACKOFF_BASE_SECONDS": 30.0,
    "BACKOFF_MAX_SECONDS": 6 * 3600.0,
    "LEASE_SECONDS": 300,
    "RETENTION_DAYS": 30,
    "DEAD_RETENTION_DAYS": 90,
    "GZIP": False,
    "ORDER_ADAPTER": None,
    "DEFAULT_CURRENCY": None,
    "RAISE_ERRORS": None,
    "SITE_URL": None,
    "DATABASE": None,
    "EXCLUDE_PATHS": DEFAULT_EXCLUDE_PATHS,
    "EXCLUDE_URL_PARAMS": DEFAULT_EXCLUDE_URL_PARAMS,
    "TRACK_BOTS": False,
    "CONSENT": None,
    "RESPECT_DNT": False,
    "TRUSTED_PROXY_COUNT": 0,
    "TRUSTED_PROXIES": (),
    "FLUSHERS": 1,
    "FLUSH_ON_PURCHASE": False,
    "PROMETHEUS": False,
    "PROMETHEUS_PORT": None,
    "PROMETHEUS_ADDR": "127.0.0.1",
}

REQUIRED = ("API_KEY", "CUSTOMER_SITE_ID")


class Settings:
    """One typed property per TRACIFY key. Each is worked out on first use and kept until
    Django's setting_changed reports TRACIFY or DEBUG replaced (override_settings does)."""

    @cached_property
    def raw(self) -> dict[str, Any]:
        value = getattr(django_settings, "TRACIFY", {})
        if not isinstance(value, dict):
            raise ImproperlyConfigured("settings.TRACIFY must be a dict.")
        return value

    def forget(self, *, setting: str, **kwargs: Any) -> None:
        """setting_changed receiver: work the keys out again after TRACIFY (or DEBUG, which
        RAISE_ERRORS follows) was replaced."""
        if setting in ("TRACIFY", "DEBUG"):
            self.__dict__.clear()  # every cached_property: raw and the keys

    def get(self, key: str) -> Any:
        return self.raw.get(key, DEFAULTS[key])

    def _required(self, key: str) -> str:
        value = self.get(key)
        if not value:
            raise ImproperlyConfigured(f"TRACIFY['{key}'] is not set.")
        return str(value)

    @cached_property
    def API_KEY(self) -> str:
        return self._required("API_KEY")

    @cached_property
    def CUSTOMER_SITE_ID(self) -> str:
        return self._required("CUSTOMER_SITE_ID")

    @cached_property
    def ENDPOINT(self) -> str:
        return str(self.get("ENDPOINT"))

    @cached_property
    def ENABLED(self) -> bool:
        return bool(self.get("ENABLED"))

    @cached_property
    def TIMEOUT(self) -> float:
        return float(self.get("TIMEOUT"))

    @cached_property
    def BATCH_SIZE(self) -> int:
        return int(self.get("BATCH_SIZE"))

    @cached_property
    def MAX_BODY_BYTES(self) -> int:
        return int(self.get("MAX_BODY_BYTES"))

    @cached_property
    def MAX_ATTEMPTS(self) -> int | None:
        value = self.get("MAX_ATTEMPTS")
        return None if value is None else int(value)

    @cached_property
    def MAX_AGE_SECONDS(self) -> int:
        return int(self.get("MAX_AGE_SECONDS"))

    @cached_property
    def BACKOFF_BASE_SECONDS(self) -> float:
        return float(self.get("BACKOFF_BASE_SECONDS"))

    @cached_property
    def BACKOFF_MAX_SECONDS(self) -> float:
        return float(self.get("BACKOFF_MAX_SECONDS"))

    @cached_property
    def LEASE_SECONDS(self) -> int:
        return int(self.get("LEASE_SECONDS"))

    @cached_property
    def RETENTION_DAYS(self) -> int:
        return int(self.get("RETENTION_DAYS"))

    @cached_property
    def DEAD_RETENTION_DAYS(self) -> int:
        return int(self.get("DEAD_RETENTION_DAYS"))

    @cached_property
    def GZIP(self) -> bool:
        return bool(self.get("GZIP"))

    @cached_property
    def ORDER_ADAPTER(self) -> Callable[[Any], Any] | None:
        return _callable_or_none(self.get("ORDER_ADAPTER"), "ORDER_ADAPTER")

    @cached_property
    def DEFAULT_CURRENCY(self) -> str | None:
        value = self.get("DEFAULT_CURRENCY")
        return str(value) if value else None

    @cached_property
    def RAISE_ERRORS(self) -> bool:
        value = self.get("RAISE_ERRORS")
        return bool(django_settings.DEBUG) if value is None else bool(value)

    @cached_property
    def SITE_URL(self) -> str | None:
        value = self.get("SITE_URL")
        return str(value).rstrip("/") if value else None

    @cached_property
    def DATABASE(self) -> str | None:
        value = self.get("DATABASE")
        return str(value) if value else None

    @cached_property
    def EXCLUDE_PATHS(self) -> tuple[str, ...]:
        return tuple(self.get("EXCLUDE_PATHS"))

    @cached_property
    def EXCLUDE_URL_PARAMS(self) -> tuple[str, ...]:
        return tuple(str(name).lower() for name in self.get("EXCLUDE_URL_PARAMS"))

    @cached_property
    def TRACK_BOTS(self) -> bool:
        return bool(self.get("TRACK_BOTS"))

    @cached_property
    def CONSENT(self) -> Callable[[Any], bool] | None:
        return _callable_or_none(self.get("CONSENT"), "CONSENT")

    @cached_property
    def RESPECT_DNT(self) -> bool:
        return bool(self.get("RESPECT_DNT"))

    @cached_property
    def TRUSTED_PROXY_COUNT(self) -> int:
        return int(self.get("TRUSTED_PROXY_COUNT"))

    @cached_property
    def TRUSTED_PROXIES(self) -> tuple[str, ...]:
        value: Sequence[str] = self.get("TRUSTED_PROXIES")
        return tuple(value)

    @cached_property
    def FLUSHERS(self) -> int:
        return int(self.get("FLUSHERS"))

    @cached_property
    def FLUSH_ON_PURCHASE(self) -> bool:
        return bool(self.get("FLUSH_ON_PURCHASE"))

    @cached_property
    def PROMETHEUS(self) -> bool:
        return bool(self.get("PROMETHEUS"))

    @cached_property
    def PROMETHEUS_PORT(self) -> int | None:
        value = self.get("PROMETHEUS_PORT")
        return None if value is None else int(value)

    @cached_property
    def PROMETHEUS_ADDR(self) -> str:
        return str(self.get("PROMETHEUS_ADDR"))


def _callable_or_none(value: Any, key: str) -> Callable[..., Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            imported: Callable[..., Any] = import_string(value)
        except ImportError as err:
            raise ImproperlyConfigured(f"TRACIFY['{key}'] = {value!r} cannot be imported.") from err
        return imported
    if not callable(value):
        raise ImproperlyConfigured(f"TRACIFY['{key}'] must be a callable or its dotted path.")
    return cast("Callable[..., Any]", value)


settings = Settings()
setting_changed.connect(settings.forget, dispatch_uid="django_tracify.conf")

# What the API key becomes wherever text might carry it (a server or proxy may echo it back).
API_KEY_MASK = "[API key]"


def without_api_key(text: str, api_key: str | None = None) -> str:
    """`text` with the API key (by default TRACIFY['API_KEY']) replaced by API_KEY_MASK."""
    key = settings.get("API_KEY") if api_key is None else api_key
    return text.replace(str(key), API_KEY_MASK) if key else text
