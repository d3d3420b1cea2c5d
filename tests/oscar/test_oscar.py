from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from oscar.apps.address.models import Country
from oscar.apps.order.models import Order
from oscar.test import factories

from django_tracify.capture.context import activate, context_from_request
from django_tracify.events.identity import hash_email, hash_identity
from django_tracify.models import OutboxEvent
from tests.conftest import BROWSER_UA

pytestmark = [
    pytest.mark.oscar,
    pytest.mark.django_db,
    # Oscar 4.2's own templates call treebeard's deprecated Category.get_tree().
    pytest.mark.filterwarnings("ignore::treebeard.deprecation.RemovedInTreebeard8Warning"),
]

GUEST_EMAIL = "Guest.Buyer@Example.com"


@pytest.fixture
def browser() -> Client:
    return Client(
        headers={"host": "shop.example.com", "user-agent": BROWSER_UA}, REMOTE_ADDR="203.0.113.7"
    )


@pytest.fixture
def mug() -> Any:
    return factories.create_product(title="Tracify Mug", price=Decimal("12.40"), num_in_stock=10)


def place_guest_order(browser: Client, product: Any, quantity: int) -> Order:
    Country.objects.get_or_create(
        iso_3166_1_a2="DE", defaults={"name": "Germany", "is_shipping_country": True}
    )
    added = browser.post(reverse("basket:add", kwargs={"pk": product.pk}), {"quantity": quantity})
    assert added.status_code == 302
    gateway = browser.post(
        reverse("checkout:index"), {"options": "anonymous", "username": GUEST_EMAIL}
    )
    assert gateway["Location"] == reverse("checkout:shipping-address")
    address = browser.post(
        reverse("checkout:shipping-address"),
        {
            "first_name": "Gia",
            "last_name": "Guest",
            "line1": "1 Teststraße",
            "line4": "Berlin",
            "postcode": "10115",
            "country": "DE",
        },
    )
    assert address.status_code == 302, address.context["form"].errors
    browser.get(reverse("checkout:shipping-method"), follow=True)
    placed = browser.post(reverse("checkout:preview"), {"action": "place_order"})
    assert placed["Location"] == reverse("checkout:thank-you")
    return Order.objects.get()


def test_guest_checkout_records_view_addtocart_and_one_purchase(browser: Client, mug: Any) -> None:
    assert browser.get(mug.get_absolute_url()).status_code == 200
    order = place_guest_order(browser, mug, quantity=2)
    for _ in range(2):  # the thank-you page is reloaded
        assert browser.get(reverse("checkout:thank-you")).status_code == 200

    events = list(OutboxEvent.objects.exclude(event_type="pageview").order_by("id"))
    assert [event.event_type for event in events] == ["productview", "addtocart", "purchase"]
    view, add, purchase = events
    assert view.payload["url"] == f"http://shop.example.com{mug.get_absolute_url()}"
    # Not the basket's POST endpoint: the product page the visitor added the mug on.
    assert add.payload["url"] == view.payload["url"]
    assert purchase.dedup_key == f"purchase:{order.number}"
    assert purchase.payload["data"] == {
        "origin": "http://shop.example.com",
        "order_id": order.number,
        "currency": "EUR",
        "amount": "24.80",
        "ITEM1": "Tracify Mug",
        "AMT1": "12.40",
        "QTY1": "2",
    }
    assert order.total_incl_tax == Decimal("24.80")
    identity = purchase.payload["identity_data"]
    assert identity[hash_email("guest.buyer@example.com")] == 1
    assert identity[hash_identity("203.0.113.7")] == 3
    assert GUEST_EMAIL.lower() not in str(purchase.payload).lower()


def test_without_the_middleware_post_checkout_records_the_purchase(
    browser: Client, mug: Any, settings: Any
) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("django_tracify")]
    order = place_guest_order(browser, mug, quantity=1)
    purchase = OutboxEvent.objects.get(event_type="purchase")
    assert purchase.payload["url"] == "http://shop.example.com" + reverse("checkout:preview")
    assert purchase.payload["data"]["order_id"] == order.number
    assert purchase.payload["data"]["amount"] == "12.40"


def test_an_order_rolled_back_leaves_no_purchase(shop_request: Any) -> None:
    with activate(context_from_request(shop_request("/checkout/preview/"))):
        with pytest.raises(RuntimeError), transaction.atomic():
            factories.create_order(number="100001")
            raise RuntimeError("payment declined")
        assert not Order.objects.exists()
        assert not OutboxEvent.objects.exists()

        factories.create_order(number="100002")
    assert list(OutboxEvent.objects.values_list("dedup_key", flat=True)) == ["purchase:100002"]


@pytest.mark.django_db(databases=["default", "outbox"])
def test_outbox_on_its_own_database_waits_for_the_order_to_commit(
    shop_request: Any,
    tracify_settings: Callable[..., None],
    django_capture_on_commit_callbacks: Any,
) -> None:
    tracify_settings(DATABASE="outbox")
    outbox = OutboxEvent.objects.using("outbox")
    with activate(context_from_request(shop_request("/checkout/preview/"))):
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(RuntimeError),
            transaction.atomic(),
        ):
            factories.create_order(number="100001")
            raise RuntimeError("payment declined")
        assert not outbox.exists()

        with django_capture_on_commit_callbacks(execute=False) as pending:
            factories.create_order(number="100002")
            assert not outbox.exists()
        for commit in pending:
            commit()
    assert list(outbox.values_list("dedup_key", flat=True)) == ["purchase:100002"]


def test_without_a_request_an_order_placed_by_a_script_is_left_to_the_shop() -> None:
    factories.create_order(number="100003")
    assert Order.objects.filter(number="100003").exists()
    assert not OutboxEvent.objects.exists()


def test_the_added_quantity_comes_from_the_form_else_the_basket_line(rf: Any) -> None:
    from django_tracify.contrib.oscar.receivers import added_quantity

    view = SimpleNamespace(line=SimpleNamespace(quantity=5))
    assert added_quantity(view, rf.post("/basket/add/1/", {"quantity": "3"})) == "3"
    assert added_quantity(view, rf.post("/basket/add/1/")) == 5
    assert added_quantity(object(), None) == 1
    unparsable = rf.post(
        "/basket/add/1/", data=b"--x", content_type="multipart/form-data; boundary="
    )
    assert added_quantity(view, unparsable) == 5


def test_in_production_an_unreadable_order_never_breaks_the_checkout(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    from oscar.apps.checkout.signals import post_checkout

    tracify_settings(RAISE_ERRORS=False)
    not_an_order = SimpleNamespace(number="100004")
    post_checkout.send(sender=None, order=not_an_order, request=shop_request("/checkout/"))
    assert "purchase not recorded: AttributeError" in caplog.text
    assert not OutboxEvent.objects.exists()
