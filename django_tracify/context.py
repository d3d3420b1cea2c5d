"""The request context an event is built from: hashed identity, URL, origin, referer, params.

The middleware makes the context of the request being served current (a ContextVar), so that
track_* calls anywhere in that request carry it without a `request` argument.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest

from django_tracify.conf import settings
from django_tracify.errors import TracifyValidationError
from django_tracify.identity import Identity

MAX_URL_LENGTH = 2048
MAX_PARAM_LENGTH = 512
MAX_PARAMS = 50
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class RequestContext:
    identity: Identity
    url: str | None = None
    origin: str | None = None
    referer: str | None = None
    url_params: dict[str, str] = field(default_factory=dict)
    consented: bool = True

    def to_snapshot(self) -> dict[str, Any]:
        """A JSON-serialisable copy (hashes only) a shop can keep on its order."""
        snapshot: dict[str, Any] = {"v": SNAPSHOT_VERSION, "identity": self.identity.to_dict()}
        for name in ("url", "origin", "referer"):
            value = getattr(self, name)
            if value:
                snapshot[name] = value
        return snapshot

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> RequestContext:
        if isinstance(snapshot, RequestContext):
            return snapshot
        if isinstance(snapshot, Identity):
            return cls(identity=snapshot)
        if not isinstance(snapshot, dict):
            raise TracifyValidationError(
                "identity", f"expected capture_identity()'s dict, got {type(snapshot).__name__}"
            )
        identity = Identity.from_dict(snapshot.get("identity", {}), "identity.identity")
        texts: dict[str, str | None] = {}
        for name in ("url", "origin", "referer"):
            value = snapshot.get(name)
            if value is not None and not isinstance(value, str):
                raise TracifyValidationError(f"identity.{name}", "is not a string")
            texts[name] = cut(value, MAX_URL_LENGTH) if value else None
        return cls(
            identity=identity, url=texts["url"], origin=texts["origin"], referer=texts["referer"]
        )


_current: ContextVar[RequestContext | None] = ContextVar("tracify_request_context", default=None)


def current_context() -> RequestContext | None:
    return _current.get()


@contextmanager
def activate(context: RequestContext | None) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


def client_ip(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")


def user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT") or "")


def user_email(request: HttpRequest) -> str | None:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    email = getattr(user, "email", None)
    return str(email) if email else None


def request_url(request: HttpRequest) -> tuple[str | None, str | None]:
    """Domain + path of the request and its origin, or (None, None) for a disallowed host."""
    try:
        origin = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return None, None
    return cut(origin + request.path, MAX_URL_LENGTH), origin


def without_query(url: str) -> str:
    """Domain and path only: query strings can carry personal data (emails, tokens)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return cut(f"{parts.scheme}://{parts.netloc}{parts.path}", MAX_URL_LENGTH)


def is_excluded_param(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in settings.EXCLUDE_URL_PARAMS)


def url_params(request: HttpRequest) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in request.GET.items():
        if len(params) >= MAX_PARAMS:
            break
        if name and not is_excluded_param(name):
            params[cut(name, 64)] = cut(str(value), MAX_PARAM_LENGTH)
    return params


def context_from_request(request: HttpRequest) -> RequestContext:
    url, origin = request_url(request)
    referer = request.META.get("HTTP_REFERER")
    identity = Identity.from_raw(
        ip=client_ip(request), user_agent=user_agent(request), email=user_email(request)
    )
    return RequestContext(
        identity=identity,
        url=url,
        origin=origin,
        referer=without_query(str(referer)) or None if referer else None,
        url_params=url_params(request),
    )
