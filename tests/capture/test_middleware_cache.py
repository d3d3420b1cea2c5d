"""TracifyMiddleware behind Django's caches: the per-site cache (in Django's documented order),
the per-view `cache_page` decorator, and template fragment caching around the tags.

tests/capture/test_middleware_cache_server.py runs the per-site cache in a real gunicorn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache
from django.http import HttpResponse
from django.test import AsyncClient, Client

from django_tracify.capture.landing import PENDING_COOKIE
from django_tracify.events.identity import hash_identity
from django_tracify.models import OutboxEvent
from tests import middleware_lists
from tests.conftest import BROWSER_UA

pytestmark = [pytest.mark.urls("tests.cache_views")]

ADA = "203.0.113.7"
BOB = "198.51.100.23"

Fetch = Callable[..., HttpResponse]


@pytest.fixture(autouse=True)
def local_memory_cache(settings: Any) -> None:
    # LocMemCache pickles what it stores, as Redis and memcached do.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.MIDDLEWARE = middleware_lists.TRACKED
    cache.clear()


@pytest.fixture
def site_cache(settings: Any) -> None:
    settings.MIDDLEWARE = middleware_lists.SITE_CACHE


def sync_visitor(ip: str) -> Fetch:
    client = Client(REMOTE_ADDR=ip)

    def fetch(path: str, **headers: str) -> HttpResponse:
        response: HttpResponse = client.get(path, headers={"user-agent": BROWSER_UA, **headers})
        return response

    return fetch


def async_visitor(ip: str) -> Fetch:
    class Visitor(AsyncClient):
        def _base_scope(self, **request: Any) -> dict[str, Any]:
            scope: dict[str, Any] = super()._base_scope(**request)  # type: ignore[misc]
            scope["client"] = [ip, 50000]
            return scope

    client = Visitor()

    def fetch(path: str, **headers: str) -> HttpResponse:
        headers = {"user-agent": BROWSER_UA, **headers}
        response: HttpResponse = async_to_sync(client.get)(path, headers=headers)
        return response

    return fetch


@pytest.fixture(params=["sync", "async"])
def visitor(request: pytest.FixtureRequest, transactional_db: None) -> Callable[[str], Fetch]:
    return sync_visitor if request.param == "sync" else async_visitor


def events(event_type: str = "pageview") -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type=event_type).order_by("id"))


def visitor_ip(event: OutboxEvent) -> str:
    identity_data = event.payload["identity_data"]
    [ip] = [ip for ip in (ADA, BOB) if hash_identity(ip) in identity_data]
    return ip


@pytest.mark.usefixtures("site_cache")
def test_the_per_site_cache_serves_and_caches_tracked_pages(
    visitor: Callable[[str], Fetch],
) -> None:
    first = visitor(ADA)("/page/?utm_source=fb")
    assert first.status_code == 200
    again = visitor(BOB)("/page/?utm_source=fb")
    assert again.status_code == 200
    assert again.content == first.content  # the cached copy
    assert [visitor_ip(event) for event in events()] == [ADA, BOB]
    assert all(event.payload["data"]["utm_source"] == "fb" for event in events())


@pytest.mark.usefixtures("site_cache")
def test_a_cached_copy_closed_again_records_nothing_more(
    visitor: Callable[[str], Fetch],
) -> None:
    visitor(ADA)("/page/")
    bob = visitor(BOB)
    bob("/page/")
    bob("/page/")
    # Each copy served from the cache is the visitor's own pageview, never Ada's again.
    assert [visitor_ip(event) for event in events()] == [ADA, BOB, BOB]


@pytest.mark.usefixtures("site_cache")
def test_the_pending_marker_cookie_is_never_cached_for_other_visitors(db: None) -> None:
    client = Client(REMOTE_ADDR=ADA)
    client.cookies[PENDING_COOKIE] = "1"  # a marker whose session lost its parameters
    response = client.get("/page/", headers={"user-agent": BROWSER_UA})
    assert response.cookies[PENDING_COOKIE]["max-age"] == 0
    assert "private" in response["Cache-Control"]
    later = sync_visitor(BOB)("/page/")
    assert PENDING_COOKIE not in later.cookies


def test_a_cache_page_view_records_a_pageview_for_each_visitor(
    visitor: Callable[[str], Fetch],
) -> None:
    first = visitor(ADA)("/cached-view/")
    again = visitor(BOB)("/cached-view/")
    assert again.content == first.content
    assert [visitor_ip(event) for event in events()] == [ADA, BOB]


def test_tags_in_a_cached_fragment_record_only_when_it_is_rendered(db: None) -> None:
    first = sync_visitor(ADA)("/fragment/")
    again = sync_visitor(BOB)("/fragment/")
    # The fragment (and its tag) rendered for Ada only; Bob got her fragment, not her identity.
    fragment_line = first.content.splitlines()[1]
    assert fragment_line in again.content.splitlines()
    assert [visitor_ip(event) for event in events("productview")] == [ADA]
    # A tag outside {% cache %} runs for every visitor, with that visitor's identity.
    assert [visitor_ip(event) for event in events("addtocart")] == [ADA, BOB]
    assert [visitor_ip(event) for event in events()] == [ADA, BOB]
