"""Tracking from async code: the async twins, and the sync API and tags in an event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import copy_context
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.http import HttpResponse
from django.test import AsyncClient

import django_tracify as tracify
from django_tracify.capture.event_loop import deferring
from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import hash_identity
from django_tracify.models import OutboxEvent, OutboxStatus
from tests import middleware_lists
from tests.async_views import API_ORDER, PRODUCT, TAG_ORDER
from tests.conftest import BROWSER_UA

# The views' rows are written in other threads, with their own database connections.
pytestmark = [pytest.mark.urls("tests.async_views"), pytest.mark.usefixtures("transactional_db")]

Fetch = Callable[[str], HttpResponse]


@pytest.fixture(autouse=True)
def async_safety(monkeypatch: pytest.MonkeyPatch) -> None:
    # With it set, Django (and the app) would run queries in the event loop's thread.
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)


@pytest.fixture
def fetch(settings: Any) -> Fetch:
    settings.MIDDLEWARE = middleware_lists.TRACKED
    client = AsyncClient()

    def get(path: str) -> HttpResponse:
        response: HttpResponse = async_to_sync(client.get)(path, headers={"user-agent": BROWSER_UA})
        return response

    return get


def rows(event_type: str) -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type=event_type).order_by("id"))


def test_the_async_twins_return_the_rows_they_stored(fetch: Fetch) -> None:
    ids = fetch("/api/?utm_source=newsletter").json()
    stored = {row.pk: row for row in OutboxEvent.objects.all()}
    assert sorted(stored) == sorted(ids.values())
    for name in ("pageview", "productview", "addtocart", "conversion", "postpurchasesurvey"):
        assert stored[ids[name]].event_type == name
        assert stored[ids[name]].payload["data"]["utm_source"] == "newsletter"
    purchase, webhook = stored[ids["purchase"]], stored[ids["webhook"]]
    assert purchase.dedup_key == f"purchase:{API_ORDER['number']}"
    assert hash_identity(BROWSER_UA) in purchase.payload["identity_data"]
    # The identity acapture_identity() took at "checkout" is the one the webhook's purchase has.
    assert webhook.payload["identity_data"] == purchase.payload["identity_data"]
    assert stored[ids["pageview"]].payload["url"] == "http://testserver/api/"


def test_the_tags_of_a_template_an_async_view_renders_are_stored(fetch: Fetch) -> None:
    response = fetch("/tags/?utm_source=newsletter")
    assert response.status_code == 200
    [productview], [addtocart], [purchase] = (
        rows("productview"),
        rows("addtocart"),
        rows("purchase"),
    )
    assert productview.payload["url"] == "http://testserver" + PRODUCT.get_absolute_url()
    assert addtocart.payload["data"]["utm_source"] == "newsletter"
    assert purchase.payload["data"]["order_id"] == TAG_ORDER["number"]
    assert purchase.payload["data"]["QTY1"] == "2"
    assert hash_identity(BROWSER_UA) in purchase.payload["identity_data"]
    assert len(rows("pageview")) == 1


def test_with_raise_errors_a_bad_tag_raises_and_its_neighbours_are_stored(fetch: Fetch) -> None:
    with pytest.raises(TracifyValidationError, match="quantity"):
        fetch("/bad-tags/")
    assert len(rows("productview")) == len(rows("purchase")) == 1


def test_in_production_a_bad_tag_is_an_invalid_row_beside_its_neighbours(
    fetch: Fetch, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    assert fetch("/bad-tags/").status_code == 200
    [invalid] = OutboxEvent.objects.filter(status=OutboxStatus.INVALID)
    assert invalid.event_type == "addtocart"
    assert "quantity" in invalid.last_error
    assert len(rows("productview")) == len(rows("purchase")) == 1


def test_the_sync_api_called_in_an_async_view_is_stored(fetch: Fetch) -> None:
    response = fetch("/sync-calls/")
    # The row is written once the view has returned: the call itself answers None.
    assert "True ['identity', 'origin', 'url', 'v']" in response.content.decode()
    [conversion] = rows("conversion")
    assert conversion.payload["data"]["conversion_id"] == "lead-9"
    assert hash_identity(BROWSER_UA) in conversion.payload["identity_data"]


def test_landing_parameters_a_deferred_event_carried_are_not_kept_for_the_next_page(
    fetch: Fetch,
) -> None:
    assert fetch("/landing/?utm_source=newsletter").status_code == 302
    [productview] = rows("productview")
    assert productview.payload["data"]["utm_source"] == "newsletter"
    fetch("/page/")
    [pageview] = rows("pageview")
    assert "utm_source" not in pageview.payload.get("data", {})


def run_in_event_loop(call: Callable[[], Any]) -> Any:
    async def shop_code() -> Any:
        return call()

    return asyncio.run(shop_code())


def test_without_the_middleware_a_sync_call_in_an_event_loop_is_stored(
    shop_request: Callable[..., Any],
) -> None:
    request = shop_request("/thanks/")
    row = run_in_event_loop(lambda: tracify.track_purchase(API_ORDER, request=request))
    assert row is not None
    assert OutboxEvent.objects.get().pk == row.pk
    assert row.payload["url"] == "https://shop.example.com/thanks/"
    snapshot = run_in_event_loop(lambda: tracify.capture_identity(request))
    assert snapshot["url"] == "https://shop.example.com/thanks/"


def test_without_the_middleware_a_bad_call_in_an_event_loop_raises_or_is_an_invalid_row(
    shop_request: Callable[..., Any], tracify_settings: Callable[..., None]
) -> None:
    request = shop_request("/basket/")
    with pytest.raises(TracifyValidationError, match="quantity"):
        run_in_event_loop(lambda: tracify.track_addtocart(request, PRODUCT, quantity=0))
    tracify_settings(RAISE_ERRORS=False)
    assert run_in_event_loop(lambda: tracify.track_addtocart(request, PRODUCT, 0)) is None
    [invalid] = OutboxEvent.objects.all()
    assert invalid.status == OutboxStatus.INVALID
    assert "quantity" in invalid.last_error


def test_a_call_from_a_task_that_outlives_the_view_is_stored_not_kept_for_it(
    shop_request: Callable[..., Any],
) -> None:
    request = shop_request("/thanks/")

    async def view_that_starts_a_task() -> Any:
        with deferring():
            task_context = copy_context()  # what asyncio.create_task() takes along
        # The view has returned and its calls were written; the task calls later.
        return task_context.run(tracify.track_purchase, API_ORDER, request=request)

    row = asyncio.run(view_that_starts_a_task())
    assert row is not None
    assert OutboxEvent.objects.get().pk == row.pk
