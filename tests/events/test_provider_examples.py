"""The provider's five example payloads, produced through the public API, field by field."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import RequestFactory

import django_tracify as tracify
from tests import provider_examples as examples

HEX64 = re.compile(r"^[0-9a-f]{64}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def example_site(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(CUSTOMER_SITE_ID=examples.CSID)


def browser_request(rf: RequestFactory, *, campaign: bool = True, referer: bool = True) -> Any:
    query = "?" + "&".join(f"{k}={v}" for k, v in examples.CAMPAIGN.items()) if campaign else ""
    extra: dict[str, Any] = {
        "HTTP_HOST": "www.yourwebsite.com",
        "HTTP_USER_AGENT": "Mozilla/5.0",
        "REMOTE_ADDR": "192.168.1.1",
    }
    if referer:
        extra["HTTP_REFERER"] = "https://www.referringwebsite.com"
    request = rf.get("/your-full-path-here" + query, secure=True, **extra)
    request.user = SimpleNamespace(is_authenticated=True, email="customer@example.com")
    return request


def assert_same_shape(built: dict[str, Any], example: dict[str, Any]) -> None:
    assert list(built) == list(example)
    assert built["url"] == example["url"]
    assert built["customer_site_id"] == example["customer_site_id"]
    assert built["type"] == example["type"]
    assert DATETIME.match(built["datetime"])
    assert sorted(built["identity_data"].values()) == sorted(example["identity_data"].values())
    assert all(HEX64.match(key) for key in built["identity_data"])
    assert set(built["data"]) == set(example["data"])
    for key, value in example["data"].items():
        assert isinstance(built["data"][key], str), key
        if key.startswith("AMT"):
            assert Decimal(built["data"][key]) == Decimal(value), key
        else:
            assert built["data"][key] == value, key


def test_pageview(rf: RequestFactory) -> None:
    event = tracify.track_pageview(browser_request(rf))
    assert event is not None
    assert_same_shape(event.payload, examples.PAGEVIEW)


def test_productview(rf: RequestFactory) -> None:
    event = tracify.track_productview(browser_request(rf), product=object())
    assert event is not None
    assert_same_shape(event.payload, examples.PRODUCTVIEW)


def test_addtocart(rf: RequestFactory) -> None:
    event = tracify.track_addtocart(browser_request(rf, campaign=False, referer=False), None, 2)
    assert event is not None
    assert_same_shape(event.payload, examples.ADDTOCART)


def test_purchase(rf: RequestFactory) -> None:
    order = {
        "number": "123456789",
        "total": Decimal("100.00"),
        "currency": "EUR",
        "email": "customer@example.com",
        "lines": [
            {"title": "Name of Product 1", "quantity": 2, "unit_price": Decimal("25")},
            {"title": "Name of Product 2", "quantity": 1, "unit_price": "50"},
        ],
    }
    event = tracify.track_purchase(
        order, request=browser_request(rf, campaign=False, referer=False)
    )
    assert event is not None
    assert_same_shape(event.payload, examples.PURCHASE)
    assert event.payload["data"]["AMT1"] == "25.00"


def test_conversion(rf: RequestFactory) -> None:
    request = browser_request(rf, campaign=False, referer=False)
    event = tracify.track_conversion("123456789", "100", "EUR", request=request)
    assert event is not None
    assert_same_shape(event.payload, examples.CONVERSION)


def test_datetime_is_when_the_event_occurred_in_utc(rf: RequestFactory) -> None:
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    event = tracify.track_pageview(browser_request(rf))
    assert event is not None
    stamped = dt.datetime.strptime(event.payload["datetime"], "%Y-%m-%d %H:%M:%S")
    assert before <= stamped.replace(tzinfo=dt.timezone.utc) <= before + dt.timedelta(seconds=5)
