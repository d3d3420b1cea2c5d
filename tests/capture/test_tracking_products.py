"""track_productview / track_addtocart: the event's URL is the product's page."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.urls import NoReverseMatch

import django_tracify as tracify
from django_tracify.capture.context import activate, context_from_request
from django_tracify.errors import TracifyValidationError
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.conftest import BROWSER_UA

pytestmark = pytest.mark.django_db

MUG = SimpleNamespace(pk=7, title="Mug", get_absolute_url=lambda: "/catalogue/mug_7/")
# A product a shop passes without a get_absolute_url (a dict, a dataclass, an API object).
PLAIN = {"id": 7, "title": "Mug"}
MUG_PAGE = "https://shop.example.com/catalogue/mug_7/"


def cart_post(rf: Any, path: str = "/cart/add/", **extra: Any) -> Any:
    """The POST an "add to cart" button sends from a product page."""
    headers = {
        "HTTP_USER_AGENT": BROWSER_UA,
        "REMOTE_ADDR": "203.0.113.7",
        "HTTP_HOST": "shop.example.com",
        **extra,
    }
    return rf.post(path, {"quantity": "2"}, secure=True, **headers)


def test_productview_is_at_the_products_page_even_from_another_view(shop_request: Any) -> None:
    # A quick-view dialog served by /api/quick-view/7/: the product's own page is where it was seen.
    event = tracify.track_productview(shop_request("/api/quick-view/7/"), product=MUG)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE
    assert event.payload["data"]["origin"] == "https://shop.example.com"


def test_productview_of_a_product_without_get_absolute_url_is_at_the_request(
    shop_request: Any,
) -> None:
    event = tracify.track_productview(shop_request("/catalogue/mug_7/"), product=PLAIN)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE


def test_productview_without_a_request_uses_the_current_requests_origin(
    shop_request: Any,
) -> None:
    with activate(context_from_request(shop_request("/api/quick-view/7/"))):
        with_url = tracify.track_productview(product=MUG)
        without_url = tracify.track_productview(product=PLAIN)
    assert with_url is not None and without_url is not None
    assert with_url.payload["url"] == MUG_PAGE
    assert without_url.payload["url"] == "https://shop.example.com/api/quick-view/7/"


def test_productview_without_any_request_context_says_what_to_pass() -> None:
    with pytest.raises(TracifyValidationError, match="request: no request context"):
        tracify.track_productview(product=MUG)


def test_addtocart_is_at_the_products_page_not_the_cart_endpoint(rf: Any) -> None:
    event = tracify.track_addtocart(cart_post(rf), product=MUG, quantity=2)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE
    assert event.payload["type"] == "addtocart"


def test_addtocart_without_a_product_url_is_at_the_page_the_button_was_on(rf: Any) -> None:
    request = cart_post(rf, HTTP_REFERER="https://shop.example.com/catalogue/mug_7/?colour=red")
    event = tracify.track_addtocart(request, product=PLAIN)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE


def test_addtocart_without_a_product_url_or_own_referer_is_at_the_request(rf: Any) -> None:
    foreign = cart_post(rf, HTTP_REFERER="https://other.example/catalogue/mug_7/")
    no_referer = cart_post(rf)
    for request in (foreign, no_referer):
        event = tracify.track_addtocart(request, product=PLAIN)
        assert event is not None
        assert event.payload["url"] == "https://shop.example.com/cart/add/"


def test_addtocart_without_a_request_uses_the_current_requests_origin(rf: Any) -> None:
    with activate(context_from_request(cart_post(rf))):
        event = tracify.track_addtocart(product=MUG)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE


def test_the_product_is_not_sent_as_fields_tracify_has_none_for(shop_request: Any) -> None:
    event = tracify.track_productview(shop_request("/api/quick-view/7/"), product=MUG)
    assert event is not None
    assert set(event.payload["data"]) == {"origin"}


def test_a_product_url_keeps_domain_and_path_only(shop_request: Any) -> None:
    product = SimpleNamespace(get_absolute_url=lambda: "/catalogue/tee/?ref=jane@example.com#top")
    event = tracify.track_productview(shop_request("/"), product=product)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com/catalogue/tee/"


def test_an_absolute_product_url_is_kept(shop_request: Any) -> None:
    product = SimpleNamespace(get_absolute_url=lambda: "https://www.shop.example.com/p/tee/")
    event = tracify.track_productview(shop_request("/"), product=product)
    assert event is not None
    assert event.payload["url"] == "https://www.shop.example.com/p/tee/"


def test_without_a_usable_host_site_url_and_the_product_path_make_the_url(
    rf: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(SITE_URL="https://shop.example.com")
    request = rf.get("/x/", HTTP_HOST="evil.example", HTTP_USER_AGENT="UA")
    event = tracify.track_productview(request, product=MUG)
    assert event is not None
    assert event.payload["url"] == MUG_PAGE


def broken_url() -> str:
    raise NoReverseMatch("Reverse for 'product' not found")


def test_a_failing_get_absolute_url_is_named(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    product = SimpleNamespace(get_absolute_url=broken_url)
    with pytest.raises(TracifyValidationError, match=r"product\.get_absolute_url\(\).*NoReverse"):
        tracify.track_productview(shop_request("/"), product=product)
    tracify_settings(RAISE_ERRORS=False)
    assert tracify.track_addtocart(shop_request("/"), product=product) is None
    invalid = OutboxEvent.objects.get()
    assert (invalid.event_type, invalid.status) == ("addtocart", OutboxStatus.INVALID)
    assert invalid.last_error.startswith("product.get_absolute_url()")


def test_a_product_url_that_is_no_web_address_is_refused(shop_request: Any) -> None:
    product = SimpleNamespace(get_absolute_url=lambda: "javascript:alert(1)")
    with pytest.raises(TracifyValidationError, match=r"product\.get_absolute_url\(\)"):
        tracify.track_productview(shop_request("/"), product=product)


def test_the_async_twins_use_the_product_page(rf: Any) -> None:
    async def view_code() -> tuple[Any, Any]:
        view = await tracify.atrack_productview(cart_post(rf, "/api/quick-view/7/"), product=MUG)
        added = await tracify.atrack_addtocart(cart_post(rf), product=MUG, quantity=2)
        return view, added

    view, added = async_to_sync(view_code)()
    assert view is not None and added is not None
    assert view.payload["url"] == added.payload["url"] == MUG_PAGE
