"""The request context an event is built from: hashed identity, URL, origin, referer, params.

The middleware makes the context of the request being served current (a ContextVar), so that
track_* calls anywhere in that request carry it without a `request` argument.

Landing URL parameters (utm_source, trc_mcmp_id, ...) are pending until an event carries them:
every event of the request that brought them carries them; when that request stored no event
(a redirect), the middleware keeps them in the session and the next request's events carry
them; once an event was stored with them, they are cleared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.encoding import escape_uri_path, iri_to_uri
from django.utils.functional import LazyObject, empty

from django_tracify.client_ip import client_ip
from django_tracify.conf import settings
from django_tracify.consent import has_consent
from django_tracify.errors import TracifyValidationError
from django_tracify.identity import Identity
from django_tracify.values import looks_like_contact, printable

MAX_URL_LENGTH = 2048
MAX_PARAM_LENGTH = 512
MAX_PARAMS = 50
SNAPSHOT_VERSION = 1
SESSION_KEY = "_tracify_url_params"
# Set while the session holds pending parameters: without it the session is not read for them.
PENDING_COOKIE = "tracify_pending"
# Names of event fields (any case): a landing URL's ?Referer= or ?ITEM1= must not pose as one.
EVENT_FIELD_NAMES = re.compile(
    r"referer|origin|order_id|conversion_id|currency|amount|(item|amt|qty)[0-9]+", re.IGNORECASE
)


@dataclass
class ParamsDelivery:
    """Where the pending URL parameters stand: kept in the session, and carried by an event."""

    kept: dict[str, str] = field(default_factory=dict)
    carried: bool = False


@dataclass
class PageviewOfRequest:
    """The request's pageview, once stored: one per request, whoever asks (view, middleware)."""

    stored: bool = False
    row: Any = None


@dataclass(frozen=True)
class RequestContext:
    identity: Identity
    url: str | None = None
    origin: str | None = None
    referer: str | None = None
    # The pending landing URL parameters; every event built from this context carries them.
    url_params: dict[str, str] = field(default_factory=dict)
    consented: bool = True
    delivery: ParamsDelivery = field(default_factory=ParamsDelivery, compare=False, repr=False)
    pageview: PageviewOfRequest = field(
        default_factory=PageviewOfRequest, compare=False, repr=False
    )
    # Why a request gave no url (a host Django refused), for the error that follows.
    url_problem: str | None = field(default=None, compare=False, repr=False)

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
            texts[name] = cut(value, MAX_URL_LENGTH) if value and is_parsable(value) else None
        return cls(
            identity=identity, url=texts["url"], origin=texts["origin"], referer=texts["referer"]
        )


def is_parsable(url: str) -> bool:
    try:
        urlsplit(url)
    except ValueError:  # "http://[x": an unclosed IPv6 bracket
        return False
    return True


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


def cut(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[:limit]


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


def without_query(url: str) -> str:
    """Domain and path only: query strings can carry personal data (emails, tokens).

    An empty string for what is not an absolute URL (a malformed Referer is dropped).
    """
    if not is_parsable(url):
        return ""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return cut(f"{parts.scheme}://{parts.netloc}{iri_to_uri(parts.path)}", MAX_URL_LENGTH)


def is_excluded_param(name: str, excluded: Iterable[str] | None = None) -> bool:
    lowered = name.lower()
    words = settings.EXCLUDE_URL_PARAMS if excluded is None else excluded
    return any(word in lowered for word in words)


def allowed_params(pairs: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    params: dict[str, str] = {}
    excluded: tuple[str, ...] | None = None
    for name, value in pairs:
        if len(params) >= MAX_PARAMS:
            break
        if excluded is None:
            excluded = settings.EXCLUDE_URL_PARAMS
        name, value = str(name), cut(printable(str(value)), MAX_PARAM_LENGTH)
        if name and is_carried_param(name, value, excluded):
            params[cut(printable(name), 64)] = value
    return params


def is_carried_param(name: str, value: str, excluded: Iterable[str]) -> bool:
    """Not personal by its name or its value, and not the name of an event field."""
    if is_excluded_param(name, excluded) or EVENT_FIELD_NAMES.fullmatch(name):
        return False
    return not looks_like_contact(value)


def url_params(request: HttpRequest) -> dict[str, str]:
    # Without a query string, request.GET would build an empty QueryDict for nothing.
    return allowed_params(request.GET.items()) if request.META.get("QUERY_STRING") else {}


def has_pending_marker(request: HttpRequest) -> bool:
    return bool(request.COOKIES.get(PENDING_COOKIE))  # a deleted cookie may come back empty


def kept_url_params(request: HttpRequest) -> dict[str, str]:
    """The URL parameters an earlier request of this session left pending."""
    session = getattr(request, "session", None)
    if session is None:
        return {}
    # Loading a session is a database query on most backends: only when it is loaded anyway,
    # or when the browser carries the marker set along with the parameters.
    if not session.accessed and not has_pending_marker(request):
        return {}
    # Peeking must not add "Vary: Cookie" to pages that do not otherwise use the session.
    accessed = session.accessed
    kept = session.get(SESSION_KEY)
    session.accessed = accessed
    return allowed_params(kept.items()) if isinstance(kept, dict) else {}


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


def note_stored(context: RequestContext, payload: Any) -> None:
    """A new outbox row was stored from `context`: if it carries the pending URL parameters,
    they are done (the middleware settles the same context, kept on the request)."""
    if not context.url_params or context.delivery.carried:
        return
    data = payload.get("data") if isinstance(payload, dict) else None
    if isinstance(data, dict) and all(name in data for name in context.url_params):
        context.delivery.carried = True


def settle_url_params(
    request: HttpRequest, context: RequestContext, *, carried: bool
) -> bool | None:
    """Clear the session's pending URL parameters once carried, else keep them there.

    Returns whether the session holds pending parameters now (None: no session, or no
    consent, and nothing was looked at).
    """
    session = getattr(request, "session", None)
    if session is None or not context.consented:
        return None
    if carried or context.delivery.carried:
        if context.delivery.kept:
            session.pop(SESSION_KEY, None)
        return False
    if context.url_params and context.url_params != context.delivery.kept:
        session[SESSION_KEY] = dict(context.url_params)
    return bool(context.url_params)
