from __future__ import annotations

import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from django.template import engines
from django.template.exceptions import TemplateSyntaxError

from django_tracify.capture.context import activate, context_from_request
from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import hash_email, hash_identity
from django_tracify.models import OutboxEvent, OutboxStatus

pytestmark = pytest.mark.django_db

PRODUCT = SimpleNamespace(title="Mug", get_absolute_url=lambda: "/catalogue/mug_1/")
ORDER = {
    "number": "100042",
    "total": "24.80",
    "currency": "EUR",
    "email": "Guest@Example.com",
    "lines": [{"title": "Mug", "quantity": 2, "price": "12.40"}],
}


def render(source: str, request: Any = None, **context: Any) -> str:
    template = engines["django"].from_string("{% load tracify %}" + source)
    return template.render(context, request)


def test_productview_tag_records_the_page_and_renders_nothing(shop_request: Any) -> None:
    html = render(
        "<h1>{{ product.title }}</h1>{% tracify_productview product %}",
        shop_request("/catalogue/mug_1/?utm_source=newsletter"),
        product=PRODUCT,
    )
    assert html == "<h1>Mug</h1>"
    event = OutboxEvent.objects.get()
    assert event.event_type == "productview"
    assert event.payload["url"] == "https://shop.example.com/catalogue/mug_1/"
    assert event.payload["data"]["utm_source"] == "newsletter"
    assert hash_identity("203.0.113.7") in event.payload["identity_data"]


def test_addtocart_tag_takes_the_quantity(shop_request: Any) -> None:
    html = render(
        "{% tracify_addtocart product qty %}", shop_request("/basket/"), product=PRODUCT, qty=2
    )
    assert html == ""
    assert OutboxEvent.objects.get().event_type == "addtocart"


def test_a_reloaded_thank_you_page_records_one_purchase(shop_request: Any) -> None:
    for _ in range(3):
        render("Thanks!{% tracify_purchase order %}", shop_request("/thanks/"), order=ORDER)
    event = OutboxEvent.objects.get()
    assert event.event_type == "purchase"
    assert event.dedup_key == "purchase:100042"
    data = event.payload["data"]
    assert (data["order_id"], data["amount"], data["ITEM1"], data["QTY1"]) == (
        "100042",
        "24.80",
        "Mug",
        "2",
    )
    assert hash_email("guest@example.com") in event.payload["identity_data"]


def test_without_a_request_in_the_template_the_current_request_is_used(
    shop_request: Any,
) -> None:
    with activate(context_from_request(shop_request("/catalogue/mug_1/"))):
        render("{% tracify_productview product %}", product=PRODUCT)
    assert OutboxEvent.objects.get().payload["url"] == "https://shop.example.com/catalogue/mug_1/"


def test_in_production_a_failing_tag_still_renders_the_page(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    with caplog.at_level(logging.WARNING, logger="django_tracify"):
        html = render(
            "<p>ok</p>{% tracify_addtocart product -3 %}{% tracify_purchase order %}",
            shop_request("/basket/"),
            product=PRODUCT,
            order={"number": "1"},
        )
        html += render("{% tracify_productview product %}", product=PRODUCT)
    assert html == "<p>ok</p>"
    assert "addtocart not recorded: quantity" in caplog.text
    assert "purchase not recorded: order.currency" in caplog.text
    assert "productview not recorded: request: no request context" in caplog.text
    assert set(OutboxEvent.objects.values_list("status", flat=True)) == {OutboxStatus.INVALID}


def test_with_raise_errors_a_bad_tag_call_is_shown_to_the_developer(shop_request: Any) -> None:
    with pytest.raises(TracifyValidationError, match="quantity"):
        render("{% tracify_addtocart product 0 %}", shop_request(), product=PRODUCT)


def test_purchase_tag_needs_the_order() -> None:
    with pytest.raises(TemplateSyntaxError):
        render("{% tracify_purchase %}")
