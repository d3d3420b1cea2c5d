"""TracifyMiddleware: the request context for track_* calls, and a pageview per page seen.

Put it after SessionMiddleware and AuthenticationMiddleware: it reads request.session (for
pending URL parameters) and request.user (for the email of a logged-in visitor). The context
is built when the view first tracks something, else after the page was sent; the pageview
row is written from response.close(), once the server has sent the page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import lru_cache, partial
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.cache import patch_cache_control

from django_tracify.capture.bots import is_bot
from django_tracify.capture.context import LazyContext, activate, user_agent
from django_tracify.capture.event_loop import deferring
from django_tracify.capture.landing import (
    PENDING_COOKIE,
    has_pending_marker,
    kept_url_params,
    settle_url_params,
)
from django_tracify.capture.tracking import record, request_context
from django_tracify.conf import settings
from django_tracify.events.builders import PAGEVIEW, build_pageview

logger = logging.getLogger(__name__)

HTML_CONTENT_TYPES = ("text/html", "application/xhtml+xml")
# Chrome/Edge: Sec-Purpose / Purpose; Safari: X-Purpose: preview; Firefox: X-moz: prefetch.
SPECULATIVE_HEADERS = ("HTTP_SEC_PURPOSE", "HTTP_PURPOSE", "HTTP_X_PURPOSE", "HTTP_X_MOZ")
SPECULATIVE_WORDS = ("prefetch", "prerender", "preview")


@lru_cache(maxsize=8)
def path_matcher(paths: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """EXCLUDE_PATHS as the paths themselves and the prefixes of what is below them."""
    return frozenset(paths), tuple(path if path.endswith("/") else path + "/" for path in paths)


def is_excluded_path(path: str) -> bool:
    """Whether `path` is one of EXCLUDE_PATHS or below one (whole path segments only)."""
    exact, below = path_matcher(settings.EXCLUDE_PATHS)
    return path in exact or path.startswith(below)


def is_speculative(request: HttpRequest) -> bool:
    """A prefetch or prerender: the browser fetched the page, nobody has seen it (yet)."""
    for header in SPECULATIVE_HEADERS:
        value = request.META.get(header)
        if value and any(word in value.lower() for word in SPECULATIVE_WORDS):
            return True
    return False


def is_visitor(request: HttpRequest) -> bool:
    """A person's browser on a tracked path: not a crawler (unless TRACK_BOTS)."""
    if is_excluded_path(request.path_info):
        return False
    return settings.TRACK_BOTS or not is_bot(user_agent(request))


def is_page_seen(request: HttpRequest, response: HttpResponseBase) -> bool:
    """A full HTML page was shown: GET, 200, HTML, not streamed, not a prefetch or a fetch()."""
    if request.method != "GET" or response.status_code != 200 or response.streaming:
        return False
    content_type = str(response.get("Content-Type", "")).lower()
    if not content_type.startswith(HTML_CONTENT_TYPES):
        return False
    # Browsers mark fetch()/XHR (an HTML fragment for htmx, say) with another mode.
    if request.META.get("HTTP_SEC_FETCH_MODE", "navigate") != "navigate":
        return False
    return not is_speculative(request)


def mark_pending(request: HttpRequest, response: HttpResponseBase, held: bool) -> None:
    """Set or delete the cookie that says the session holds pending URL parameters."""
    if held == has_pending_marker(request):
        return
    path = django_settings.SESSION_COOKIE_PATH
    domain = django_settings.SESSION_COOKIE_DOMAIN
    samesite = django_settings.SESSION_COOKIE_SAMESITE
    # The cookie is this visitor's: a cache must not hand it to others with the page.
    patch_cache_control(response, private=True)
    if not held:
        response.delete_cookie(PENDING_COOKIE, path=path, domain=domain, samesite=samesite)
        return
    response.set_cookie(
        PENDING_COOKIE,
        "1",
        max_age=django_settings.SESSION_COOKIE_AGE,
        path=path,
        domain=domain,
        secure=bool(django_settings.SESSION_COOKIE_SECURE),
        httponly=True,
        samesite=samesite,
    )


class PageviewOnClose:
    """The pageview, recorded when the server closes the response (after sending it).

    A cache that stores the response pickles it, closers included: the copy records nothing
    and holds no request, else every visitor served that copy would replay the first one's
    pageview (and a real request, holding its socket, cannot be pickled at all).
    """

    __slots__ = ("request",)

    def __init__(self, request: HttpRequest | None) -> None:
        self.request = request

    def __call__(self) -> None:
        request, self.request = self.request, None
        if request is not None:
            record_pageview(request)

    def __reduce__(self) -> tuple[type[PageviewOnClose], tuple[None]]:
        return (PageviewOnClose, (None,))


def record_pageview(request: HttpRequest) -> None:
    """Runs when the server closes the response, after the page was sent."""
    try:
        if is_visitor(request):
            # Unless the view tracked something (then the context exists), the email is left
            # out when finding it would cost the page a query or two (session, user).
            request_context(request, look_up_user=False)
            # The row itself is of no use here: not building it saves ~20 us per page.
            record(PAGEVIEW, build_pageview, request, returns_row=False)
    except Exception:
        logger.exception("tracify: pageview not recorded")


class TracifyMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(
        self,
        get_response: (
            Callable[[HttpRequest], HttpResponseBase]
            | Callable[[HttpRequest], Awaitable[HttpResponseBase]]
        ),
    ) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(self.get_response)
        if self.async_mode:
            # Mark the class async-capable, but pass the real coroutine flag to Django.
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        get_response = cast("Callable[[HttpRequest], HttpResponseBase]", self.get_response)
        if not settings.ENABLED:
            return get_response(request)
        with activate(LazyContext(partial(request_context, request))):
            response = get_response(request)
        self.finish(request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        get_response = cast(
            "Callable[[HttpRequest], Awaitable[HttpResponseBase]]", self.get_response
        )
        if not settings.ENABLED:
            return await get_response(request)
        with activate(LazyContext(partial(request_context, request))), deferring() as deferred:
            response = await get_response(request)
        if deferred:
            # track_* calls and tags run in the event loop: their rows, before finish() decides
            # on the landing URL parameters they may have carried.
            await sync_to_async(deferred.run)()
        # Reading the session (and building the context) may query the database.
        await sync_to_async(self.finish)(request, response)
        return response

    def finish(self, request: HttpRequest, response: HttpResponseBase) -> None:
        try:
            seen = is_page_seen(request, response)
            # A page seen with its own URL parameters only: its pageview carries them and the
            # session has nothing to clear, so all of it waits until the page was sent.
            if kept_url_params(request) or (not seen and request.META.get("QUERY_STRING")):
                if not is_visitor(request):
                    return
                context = request_context(request, look_up_user=False)
                if not context.consented:
                    return
                # Decided now: SessionMiddleware saves the session before the page is sent.
                held = settle_url_params(request, context, carried=seen)
                if held is not None:
                    mark_pending(request, response, held)
            elif has_pending_marker(request):
                mark_pending(request, response, False)  # the session lost them (a logout)
            if seen:
                # Django calls these from response.close(), once the server has sent it.
                closers: list[Callable[[], object]] = response._resource_closers  # type: ignore[attr-defined]
                closers.append(PageviewOnClose(request))
        except Exception:
            logger.exception("tracify: the pageview could not be prepared")
