"""django_tracify.testing: capture what a block tracked, assert on it, and no network meanwhile.

test_example_shop_tests.py runs a shop's own test (the example shop's checkout) with it.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase, override_settings

import django_tracify as tracify
from django_tracify.delivery import flushing
from django_tracify.delivery.client import TracifyClient
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.testing import (
    NetworkBlocked,
    TracifyTestMixin,
    TrackedEvents,
    capture_tracking,
)
from tests.conftest import BROWSER_UA
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

ORDER = {"number": "1001", "total": "25.00", "currency": "EUR"}


def test_assert_tracked_finds_the_purchase(shop_request: Callable[..., Any]) -> None:
    with capture_tracking() as tracked:
        tracify.track_pageview(shop_request("/checkout/"))
        tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
    event = tracked.assert_tracked("purchase", order_id="1001", amount="25.00", currency="EUR")
    assert event.event_type == "purchase"
    assert event.payload["url"] == "https://shop.example.com/checkout/"
    # The values a shop has at hand (a Decimal) match the strings sent to Tracify.
    assert tracked.assert_tracked("purchase", amount=Decimal("25.00")) == event
    # Keys of the body itself, not only of its data.
    tracked.assert_tracked("pageview", url="https://shop.example.com/checkout/")
    assert [event.event_type for event in tracked] == ["pageview", "purchase"]
    assert len(tracked.of_type("purchase")) == 1


def test_a_failed_assertion_shows_what_was_tracked_and_how_it_differs(
    shop_request: Callable[..., Any],
) -> None:
    with capture_tracking() as tracked:
        tracify.track_pageview(shop_request("/cart/"))
        tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
    with pytest.raises(AssertionError) as failure:
        tracked.assert_tracked("purchase", order_id="1001", amount="30.00", coupon="SPRING")
    first, second = tracked.all
    assert str(failure.value) == (
        "No purchase tracked with order_id='1001', amount='30.00', coupon='SPRING'.\n"
        "Tracked in this block (2):\n"
        f"  #{first.id} pageview url='https://shop.example.com/cart/'\n"
        f"  #{second.id} purchase url='https://shop.example.com/checkout/' order_id='1001' "
        "currency='EUR' amount='25.00'\n"
        "      differs: amount='25.00' (expected '30.00'), coupon missing"
    )


def test_nothing_tracked_says_so() -> None:
    with capture_tracking() as tracked:
        pass
    with pytest.raises(AssertionError, match=r"^No purchase tracked\.\nNothing tracked\.$"):
        tracked.assert_tracked("purchase")


def test_assert_not_tracked(shop_request: Callable[..., Any]) -> None:
    with capture_tracking() as tracked:
        tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
    tracked.assert_not_tracked("conversion")
    tracked.assert_not_tracked("purchase", order_id="1002")
    with pytest.raises(AssertionError, match=r"no purchase with order_id='1001', tracked:"):
        tracked.assert_not_tracked("purchase", order_id="1001")
    with pytest.raises(AssertionError, match=r"Expected no event, tracked:\n  #\d+ purchase"):
        tracked.assert_not_tracked()


def test_only_what_the_block_tracked(shop_request: Callable[..., Any]) -> None:
    tracify.track_purchase({**ORDER, "number": "999"}, request=shop_request("/checkout/"))
    with capture_tracking() as tracked:
        tracify.track_pageview(shop_request("/"))
    assert [event.event_type for event in tracked] == ["pageview"]
    tracked.assert_not_tracked("purchase")


def test_a_rolled_back_purchase_is_not_tracked(shop_request: Callable[..., Any]) -> None:
    with capture_tracking() as tracked:
        try:
            with transaction.atomic():
                tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
                raise ValueError("payment declined")
        except ValueError:
            pass
    tracked.assert_not_tracked("purchase")


def test_invalid_events_are_listed_apart(
    shop_request: Callable[..., Any], tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    with capture_tracking() as tracked:
        tracify.track_purchase({"number": "1001", "total": "free"}, request=shop_request("/"))
    assert tracked.all == []
    (invalid,) = tracked.invalid
    with pytest.raises(AssertionError, match=rf"#{invalid.id} purchase: refused as invalid"):
        tracked.assert_tracked("purchase")


def test_no_flush_reaches_tracify_while_captured(
    receiver: Receiver, shop_request: Callable[..., Any]
) -> None:
    with capture_tracking() as tracked:
        tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
        with pytest.raises(NetworkBlocked, match="while tracking was captured; nothing was sent"):
            flushing.flush()
    tracked.assert_tracked("purchase", order_id="1001")
    assert receiver.accepted_events() == []
    assert OutboxEvent.objects.get().status == OutboxStatus.PENDING
    # After the block the flush sends again.
    assert flushing.flush().sent == 1
    assert len(receiver.accepted_events()) == 1


def test_block_network_false_lets_the_flush_send(
    receiver: Receiver, shop_request: Callable[..., Any]
) -> None:
    with capture_tracking(block_network=False) as tracked:
        tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
        assert flushing.flush().sent == 1
    tracked.assert_tracked("purchase", order_id="1001")
    assert len(receiver.accepted_events()) == 1


def test_the_pytest_fixture(
    tracify_events: TrackedEvents, receiver: Receiver, shop_request: Callable[..., Any]
) -> None:
    tracify.track_purchase(ORDER, request=shop_request("/checkout/"))
    tracify_events.assert_tracked("purchase", order_id="1001", amount="25.00")
    with pytest.raises(NetworkBlocked):
        flushing.flush()
    assert receiver.accepted_events() == []


@override_settings(ROOT_URLCONF="tests.testing_views")
class MixinTests(TracifyTestMixin, TestCase):
    """A shop's Django TestCase: a view (tests/testing_views.py) that tracks a purchase."""

    def test_assert_tracked_after_a_view(self) -> None:
        self.client.post(
            "/tracify-testing/checkout/",
            secure=True,
            headers={"user-agent": BROWSER_UA},
            REMOTE_ADDR="203.0.113.7",
        )
        self.assertTracked("purchase", order_id="T-1", amount="25.00")
        self.assertNotTracked("conversion")
        with self.assertRaisesMessage(AssertionError, "differs: amount='25.00' (expected '1.00')"):
            self.assertTracked("purchase", amount="1.00")

    def test_no_network(self) -> None:
        with pytest.raises(NetworkBlocked):
            TracifyClient(endpoint="http://127.0.0.1:9/", api_key="k", timeout=1).post(b"{}")
