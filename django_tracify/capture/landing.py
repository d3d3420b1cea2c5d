"""Landing URL parameters (utm_source, trc_mcmp_id, ...): pending until an event carries them.

Every event of the request that brought them carries them; when that request stored no event
(a redirect), the middleware keeps them in the session and the next request's events carry
them; once an event was stored with them, they are cleared.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from django_tracify.conf import settings
from django_tracify.events.context import RequestContext, cut
from django_tracify.events.values import looks_like_contact, printable

MAX_PARAM_LENGTH = 512


MAX_PARAMS = 50


SESSION_KEY = "_tracify_url_params"


# Set while the session holds pending parameters: without it the session is not read for them.
PENDING_COOKIE = "tracify_pending"


# Names of event fields (any case): a landing URL's ?Referer= or ?ITEM1= must not pose as one.
EVENT_FIELD_NAMES = re.compile(
    r"referer|origin|order_id|conversion_id|currency|amount|(item|amt|qty)[0-9]+", re.IGNORECASE
)


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
