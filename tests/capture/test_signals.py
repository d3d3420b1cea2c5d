from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import django_tracify as tracify
from django_tracify import signals
from django_tracify.capture import receivers
from django_tracify.capture.context import activate, context_from_request
from django_tracify.events.identity import hash_email
from django_tracify.models import OutboxEvent

pytestmark = pytest.mark.django_db

PRODUCT = SimpleNamespace(get_absolute_url=lambda: "/p/tea/")
ORDER = {"number": "A-7", "total": "18.00", "currency": "EUR", "email": "a@example.com"}


class Shop:
    """Stands for the shop's own sender class."""


def responses(sent: list[tuple[Any, Any]]) -> list[Any]:
    return [response for receiver, response in sent if receiver.__module__ == receivers.__name__]


def test_product_viewed_records_a_productview(shop_request: Any) -> None:
    sent = signals.product_viewed.send(Shop, request=shop_request("/p/tea/"), product=PRODUCT)
    event = OutboxEvent.objects.get()
    assert responses(sent) == [event]
    assert event.event_type == "productview"
    assert event.payload["url"] == "https://shop.example.com/p/tea/"


def test_cart_item_added_checks_the_quantity(shop_request: Any) -> None:
    signals.cart_item_added.send(
        Shop, request=shop_request("/basket/"), product=PRODUCT, quantity=3
    )
    assert OutboxEvent.objects.get().event_type == "addtocart"
    with pytest.raises(tracify.TracifyValidationError, match="quantity"):
        signals.cart_item_added.send(Shop, request=shop_request(), quantity="many")


def test_order_placed_records_one_purchase_per_order(shop_request: Any) -> None:
    for _ in range(2):
        signals.order_placed.send(Shop, order=ORDER, request=shop_request("/checkout/"))
    event = OutboxEvent.objects.get()
    assert (event.event_type, event.dedup_key) == ("purchase", "purchase:A-7")
    assert event.payload["data"]["amount"] == "18.00"
    assert hash_email("a@example.com") in event.payload["identity_data"]


def test_order_placed_without_request_uses_the_current_request(shop_request: Any) -> None:
    with activate(context_from_request(shop_request("/checkout/preview/"))):
        signals.order_placed.send(Shop, order=ORDER)
    assert OutboxEvent.objects.get().payload["url"] == "https://shop.example.com/checkout/preview/"


def test_conversion_completed_from_a_webhook_uses_the_identity_snapshot(
    shop_request: Any,
) -> None:
    snapshot = tracify.capture_identity(shop_request("/signup/"))
    signals.conversion_completed.send(
        Shop, conversion_id="lead-9", amount="0", currency="usd", identity=snapshot
    )
    event = OutboxEvent.objects.get()
    assert event.event_type == "conversion"
    assert event.payload["url"] == "https://shop.example.com/signup/"
    assert event.payload["data"] == {
        "origin": "https://shop.example.com",
        "conversion_id": "lead-9",
        "currency": "USD",
        "amount": "0.00",
    }


def test_in_production_a_bad_signal_never_reaches_the_sender(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    sent = signals.order_placed.send(Shop, order={"number": "1"}, request=shop_request())
    assert responses(sent) == [None]


def test_receivers_are_connected_once_even_if_connected_again(shop_request: Any) -> None:
    receivers.connect()
    signals.product_viewed.send(Shop, request=shop_request(), product=PRODUCT)
    assert OutboxEvent.objects.count() == 1


def test_the_core_never_imports_oscar() -> None:
    code = (
        "import sys, django; django.setup(); "
        "import django_tracify.capture.receivers, django_tracify.templatetags.tracify; "
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'oscar'))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
