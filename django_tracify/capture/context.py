"""The request context an event is built from: hashed identity, URL, origin, referer, params.

The middleware makes the context of the request being served current (a ContextVar), so that
track_* calls anywhere in that request carry it without a `request` argument.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.encoding import escape_uri_path
from django.utils.functional import LazyObject, empty

from django_tracify.capture.client_ip import client_ip
from django_tracify.capture.consent import has_consent
from django_tracify.capture.landing import allowed_params, kept_url_params, url_params
from django_tracify.events.context import (
    MAX_URL_LENGTH,
    ParamsDelivery,
    RequestContext,
    cut,
    without_query,
)
from django_tracify.events.identity import Identity


class LazyContext:
    """A request's context, built on first use: a page that tracks nothing while it is
    rendered pays for its context only after it has been sent."""

    def __init__(self, build: Callable[[], RequestContext]) -> None:
        self._build = build
        self.built: RequestContext | None = None

    def __call__(self) -> RequestContext:
        if self.built is None:
            self.built = self._build()
        return self.built


_current: ContextVar[RequestContext | LazyContext | None] = ContextVar(
    "tracify_request_context", default=None
)


def current_context() -> RequestContext | None:
    source = _current.get()
    return source() if isinstance(source, LazyContext) else source


@contextmanager
def activate(context: RequestContext | LazyContext | None) -> Iterator[None]:
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT") or "")


def user_email(request: HttpRequest, *, look_up: bool = True) -> str | None:
    """The email of the logged-in visitor. Without `look_up`, only if finding out costs no
    query: request.user was already used, or the session is loaded anyway."""
    user = getattr(request, "user", None)
    if not look_up and not is_loaded(user) and not session_loaded(request):
        return None
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    email = getattr(user, "email", None)
    return str(email) if email else None


def is_loaded(user: Any) -> bool:
    """False for AuthenticationMiddleware's request.user before anything has used it."""
    return not isinstance(user, LazyObject) or getattr(user, "_wrapped", None) is not empty


def session_loaded(request: HttpRequest) -> bool:
    session = getattr(request, "session", None)
    return session is not None and bool(session.accessed)


def request_url(request: HttpRequest) -> tuple[str | None, str | None]:
    """Domain + path of the request and its origin, or (None, None) for a disallowed host."""
    try:
        origin = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return None, None
    # request.path is percent-decoded: /a%20b would be sent as "/a b", not a URL Tracify takes.
    return cut(origin + escape_uri_path(request.path), MAX_URL_LENGTH), origin


def host_not_allowed(request: HttpRequest) -> str:
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME") or ""
    return (
        f"is unknown: the request's host {host[:60]!r} is not in settings.ALLOWED_HOSTS "
        "(request.get_host() raised DisallowedHost): add it there, or set TRACIFY['SITE_URL']"
    )


def context_from_request(request: HttpRequest, *, look_up_user: bool = True) -> RequestContext:
    if not has_consent(request):
        # Nothing about this visitor is kept, not even hashes.
        return RequestContext(identity=Identity(), consented=False)
    url, origin = request_url(request)
    referer = request.META.get("HTTP_REFERER")
    identity = Identity.from_raw(
        ip=client_ip(request),
        user_agent=user_agent(request),
        email=user_email(request, look_up=look_up_user),
    )
    own = url_params(request)
    kept = kept_url_params(request)
    return RequestContext(
        identity=identity,
        url=url,
        url_problem=None if url else host_not_allowed(request),
        origin=origin,
        referer=without_query(str(referer)) or None if referer else None,
        url_params=allowed_params([*kept.items(), *own.items()]) if kept else own,
        delivery=ParamsDelivery(kept=kept),
    )
