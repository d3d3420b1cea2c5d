"""The shop's own tests of its tracking, written as a shop developer writes them.

The `tracify_events` fixture comes with django-tracify (a pytest plugin): it holds the events
the test tracked, and no flush reaches Tracify while it is active.
Run: cd example_project && pytest --ds=demo_site.settings shop/tests
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from django_tracify.testing import TrackedEvents
from shop.models import Order, Product

BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)


@pytest.fixture
def browser() -> Client:
    # Tracify needs the visitor's user agent, which Django's test client does not send.
    return Client(headers={"user-agent": BROWSER_UA})


@pytest.fixture
def mug() -> Product:
    return Product.objects.create(name="Mug", slug="mug", price=Decimal("12.50"))


@pytest.mark.django_db
def test_checkout_tracks_the_purchase(
    browser: Client, mug: Product, tracify_events: TrackedEvents
) -> None:
    browser.post("/cart/add/mug/", {"quantity": 2})
    response = browser.post("/checkout/", {"email": "buyer@example.com"})

    assert response.status_code == 302
    order = Order.objects.get()
    tracify_events.assert_tracked("addtocart")
    tracify_events.assert_tracked(
        "purchase", order_id=order.number, amount=order.total, currency="EUR", ITEM1="Mug", QTY1=2
    )


@pytest.mark.django_db
def test_an_invalid_checkout_tracks_no_purchase(
    browser: Client, mug: Product, tracify_events: TrackedEvents
) -> None:
    browser.post("/cart/add/mug/", {"quantity": 1})
    response = browser.post("/checkout/", {"email": "not an address"})

    assert response.status_code == 200
    tracify_events.assert_not_tracked("purchase")
