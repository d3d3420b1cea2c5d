from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction

import django_tracify as tracify
from django_tracify.capture.context import activate, context_from_request
from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import hash_email, hash_identity
from django_tracify.events.orders import OrderData, OrderLine
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.conftest import BROWSER_UA
from tests.factories import OutboxRow

pytestmark = pytest.mark.django_db

ORDER = {"number": "A-1001", "total": "59.90", "currency": "eur", "email": "Jane@Example.com"}


def test_track_purchase_in_a_request_context_needs_no_request(shop_request: Any) -> None:
    with activate(context_from_request(shop_request("/checkout/"))):
        event = tracify.track_purchase(ORDER)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com/checkout/"
    assert event.payload["data"]["order_id"] == "A-1001"
    assert event.payload["data"]["currency"] == "EUR"
    assert event.dedup_key == "purchase:A-1001"
    assert hash_email("jane@example.com") in event.payload["identity_data"]
    assert hash_identity("203.0.113.7") in event.payload["identity_data"]


def test_a_repeated_purchase_keeps_the_first_row(shop_request: Any) -> None:
    first = tracify.track_purchase(ORDER, request=shop_request("/thanks/"))
    again = tracify.track_purchase({**ORDER, "total": "1.00"}, request=shop_request("/thanks/"))
    assert first is not None and again is not None
    assert again.pk == first.pk
    assert again.payload["data"]["amount"] == "59.90"
    assert OutboxEvent.objects.count() == 1


def test_the_event_rolls_back_with_the_order_transaction(shop_request: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        tracify.track_purchase(ORDER, request=shop_request())
        raise RuntimeError("payment failed")
    assert not OutboxEvent.objects.exists()


def test_a_failed_insert_leaves_the_shops_transaction_usable(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    with transaction.atomic():
        with transaction.atomic():
            OutboxRow(dedup_key="purchase:A-1001")
        # A unique-key clash is answered with the existing row, not an error.
        assert tracify.track_purchase(ORDER, request=shop_request()) is not None
        User.objects.create(username="still-works")
    assert User.objects.filter(username="still-works").exists()


def test_without_any_context_the_error_names_what_to_pass() -> None:
    with pytest.raises(TracifyValidationError, match="request: no request context"):
        tracify.track_purchase(ORDER)


def test_in_production_bad_input_is_logged_and_kept_for_the_admin(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    with caplog.at_level(logging.WARNING, logger="django_tracify"):
        result = tracify.track_purchase({**ORDER, "total": "12,50"}, request=shop_request())
    assert result is None
    assert "order.amount: '12,50' is not a number" in caplog.text
    invalid = OutboxEvent.objects.get()
    assert invalid.status == OutboxStatus.INVALID
    assert "order.amount" in invalid.last_error


def test_an_invalid_purchase_row_says_which_order_and_where(
    shop_request: Any, tracify_settings: Callable[..., None], admin_client: Any
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    bad = {**ORDER, "total": "12,50"}
    assert tracify.track_purchase(bad, request=shop_request("/checkout/?coupon=x")) is None
    invalid = OutboxEvent.objects.get()
    assert invalid.status == OutboxStatus.INVALID
    assert invalid.last_error == "order.amount: '12,50' is not a number [order_id A-1001]"
    assert invalid.payload == {
        "url": "https://shop.example.com/checkout/",
        "data": {"order_id": "A-1001"},
    }
    stored = json.dumps(list(OutboxEvent.objects.values()), default=str)
    for raw in ("Jane@Example.com", "jane@example.com", hash_email("jane@example.com")):
        assert raw not in stored
    listed = admin_client.get("/admin/django_tracify/outboxevent/").content.decode()
    assert "[order_id A-1001]" in listed
    detail = admin_client.get(f"/admin/django_tracify/outboxevent/{invalid.pk}/change/")
    assert "https://shop.example.com/checkout/" in detail.content.decode()


def test_an_invalid_row_keeps_the_ids_it_can_read_and_no_more(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    tracify.track_purchase({**ORDER, "number": "\x00"})  # no id, no request context either
    tracify.track_conversion("lead-9", "-1", "EUR", request=shop_request("/lead/"))
    tracify.track_post_purchase_survey("A-5", "fb")  # no request context
    rows = {row.event_type: row for row in OutboxEvent.objects.all()}
    assert rows["purchase"].payload == {}
    assert rows["purchase"].last_error.startswith("request: no request context")
    assert rows["conversion"].payload == {
        "url": "https://shop.example.com/lead/",
        "data": {"conversion_id": "lead-9"},
    }
    assert rows["postpurchasesurvey"].payload == {"data": {"order_id": "A-5"}}
    assert "conversion not recorded: amount: '-1' is negative [conversion_id lead-9]" in caplog.text


def test_in_production_an_adapter_crash_is_logged_not_raised(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(order: Any) -> OrderData:
        raise KeyError("total")

    tracify_settings(RAISE_ERRORS=False, ORDER_ADAPTER=broken)
    assert tracify.track_purchase(ORDER, request=shop_request()) is None
    assert "purchase not recorded: KeyError" in caplog.text


def test_good_events_are_kept_beside_a_bad_one(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    tracify.track_pageview(shop_request())
    tracify.track_addtocart(shop_request(), quantity=-2)
    tracify.track_conversion("lead-7", "0", "EUR", request=shop_request())
    assert sorted(OutboxEvent.objects.values_list("event_type", "status")) == [
        ("addtocart", "invalid"),
        ("conversion", "pending"),
        ("pageview", "pending"),
    ]


def test_disabled_tracking_stores_nothing(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(ENABLED=False)
    assert tracify.track_pageview(shop_request()) is None
    assert tracify.capture_identity(shop_request()) is None
    assert not OutboxEvent.objects.exists()


def test_capture_identity_for_a_webhook_later(shop_request: Any) -> None:
    snapshot = tracify.capture_identity(shop_request("/checkout/?utm_source=fb"))
    assert snapshot is not None
    stored = json.loads(json.dumps(snapshot))
    assert "203.0.113.7" not in json.dumps(stored)
    event = tracify.track_purchase(ORDER, identity=stored)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com/checkout/"
    assert hash_identity(BROWSER_UA) in event.payload["identity_data"]
    assert "utm_source" not in event.payload["data"]


def test_identity_snapshot_with_raw_values_is_refused() -> None:
    with pytest.raises(TracifyValidationError, match=r"identity\.identity\.ip"):
        tracify.track_purchase(ORDER, identity={"identity": {"ip": "1.2.3.4"}})


def test_site_url_stands_in_when_a_webhook_has_only_hashes(
    tracify_settings: Callable[..., None],
) -> None:
    tracify_settings(SITE_URL="https://shop.example.com/")
    from django_tracify.events.identity import Identity

    identity = {"identity": Identity.from_raw(ip="1.2.3.4", user_agent="UA").to_dict()}
    event = tracify.track_conversion(99, Decimal("5"), "USD", identity=identity)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com"
    assert event.payload["data"]["origin"] == "https://shop.example.com"


def test_default_adapter_reads_model_like_orders(shop_request: Any) -> None:
    lines = SimpleNamespace(
        all=lambda: [SimpleNamespace(name="Mug ☕", quantity=3, price=Decimal("4.5"))]
    )
    order = SimpleNamespace(
        pk=42,
        total_incl_tax=Decimal("13.5"),
        currency="CHF",
        user=SimpleNamespace(email="u@example.com"),
        lines=lines,
    )
    event = tracify.track_purchase(order, request=shop_request())
    assert event is not None
    data = event.payload["data"]
    assert (data["order_id"], data["amount"], data["currency"]) == ("42", "13.50", "CHF")
    assert (data["ITEM1"], data["AMT1"], data["QTY1"]) == ("Mug ☕", "4.50", "3")
    assert hash_email("u@example.com") in event.payload["identity_data"]


def test_order_adapter_setting_names_a_callable(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(ORDER_ADAPTER="tests.capture.test_tracking.custom_adapter")
    event = tracify.track_purchase(object(), request=shop_request())
    assert event is not None
    assert event.payload["data"]["order_id"] == "custom-1"
    assert event.payload["data"]["QTY1"] == "2"


def custom_adapter(order: Any) -> OrderData:
    return OrderData("custom-1", "10", "EUR", lines=[OrderLine("Tea", 2, "5")])


def test_bad_line_names_the_line(shop_request: Any) -> None:
    order = {
        **ORDER,
        "lines": [
            {"title": "ok", "quantity": 1, "price": 1},
            {"title": "bad", "quantity": "-1", "price": 1},
        ],
    }
    with pytest.raises(TracifyValidationError, match=r"order.lines\[1\].quantity"):
        tracify.track_purchase(order, request=shop_request())


def test_no_raw_personal_data_in_the_outbox(shop_request: Any) -> None:
    request = shop_request("/p/?utm_source=x&email=jane@example.com&token=abc")
    request.user = SimpleNamespace(is_authenticated=True, email="jane@example.com")
    tracify.track_pageview(request)
    tracify.track_purchase(ORDER, request=request)
    stored = json.dumps(list(OutboxEvent.objects.values()), default=str)
    for raw in ("jane@example.com", "Jane@Example.com", "203.0.113.7", BROWSER_UA, "abc"):
        assert raw not in stored
    assert '"utm_source": "x"' in stored


def test_long_and_odd_inputs_are_cut_not_rejected(shop_request: Any) -> None:
    request = shop_request(
        "/" + "p" * 8192,
        HTTP_USER_AGENT="Ü" * 10_000 + "\xff\xfe",
        HTTP_REFERER="https://ref.example/" + "r" * 9000 + "?q=secret",
    )
    event = tracify.track_pageview(request)
    assert event is not None
    assert len(event.payload["url"]) == 2048
    assert len(event.payload["data"]["Referer"]) == 2048
    assert "secret" not in json.dumps(event.payload)
    assert hash_identity("Ü" * 10_000 + "\xff\xfe") in event.payload["identity_data"]


def test_disallowed_host_needs_site_url(rf: Any, tracify_settings: Callable[..., None]) -> None:
    request = rf.get("/", HTTP_HOST="evil.example", HTTP_USER_AGENT="UA")
    with pytest.raises(TracifyValidationError, match="url: is unknown") as raised:
        tracify.track_pageview(request)
    # The request was passed: the error names the real cause, the host Django refused.
    assert "'evil.example' is not in settings.ALLOWED_HOSTS" in str(raised.value)
    assert "pass request=" not in str(raised.value)
    tracify_settings(SITE_URL="https://shop.example.com")
    event = tracify.track_pageview(request)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com"


def test_post_purchase_survey_is_kept_once_per_order(shop_request: Any) -> None:
    first = tracify.track_post_purchase_survey("A-1", "Instagram", "story", request=shop_request())
    again = tracify.track_post_purchase_survey("A-1", "TV", request=shop_request())
    assert first is not None and again is not None
    assert first.pk == again.pk
    assert first.payload["type"] == "postpurchasesurvey"
    assert first.payload["data"] | {"origin": ""} == {
        "origin": "",
        "order_id": "A-1",
        "source": "Instagram",
        "medium": "story",
    }


def test_a_visitor_without_consent_leaves_no_row(shop_request: Any) -> None:
    from dataclasses import replace

    context = replace(context_from_request(shop_request()), consented=False)
    with activate(context):
        calls = [
            tracify.track_pageview(),
            tracify.track_productview(),
            tracify.track_addtocart(),
            tracify.track_purchase(ORDER),
            tracify.track_conversion("c1", "1", "EUR"),
            tracify.track_post_purchase_survey("A-1", "fb"),
            tracify.capture_identity(),
        ]
    assert calls == [None] * 7
    assert not OutboxEvent.objects.exists()


def test_capture_identity_outside_a_request(tracify_settings: Callable[..., None]) -> None:
    with pytest.raises(TracifyValidationError, match="request"):
        tracify.capture_identity()
    tracify_settings(RAISE_ERRORS=False)
    assert tracify.capture_identity() is None


def test_an_unexpected_error_is_logged_alike_by_every_tracking_call(
    shop_request: Any,
    tracify_settings: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("session store down")

    tracify_settings(RAISE_ERRORS=False)
    monkeypatch.setattr("django_tracify.capture.tracking.context_from_request", broken)
    with caplog.at_level(logging.WARNING, logger="django_tracify"):
        assert tracify.track_productview(shop_request()) is None
        assert tracify.capture_identity(shop_request()) is None
    assert [(r.levelno, r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        (logging.ERROR, "tracify: productview not recorded: RuntimeError", True),
        (logging.ERROR, "tracify: identity not captured: RuntimeError", True),
    ]


def test_the_request_context_is_built_once_per_request(shop_request: Any) -> None:
    request = shop_request()
    first = tracify.track_pageview(request)
    second = tracify.track_productview(request)
    assert first is not None and second is not None
    assert request.tracify_context.identity.ip == hash_identity("203.0.113.7")
    assert first.payload["identity_data"] == second.payload["identity_data"]


def test_an_unusable_identity_argument_is_named() -> None:
    with pytest.raises(TracifyValidationError, match="identity: expected capture_identity"):
        tracify.track_conversion("c1", "1", "EUR", identity="203.0.113.7")


def test_url_parameters_lose_characters_a_database_cannot_store(shop_request: Any) -> None:
    event = tracify.track_pageview(shop_request("/?utm_source=fb%00x&utm_te%01rm=a"))
    assert event is not None
    assert event.payload["data"]["utm_source"] == "fbx"
    assert event.payload["data"]["utm_term"] == "a"


def test_a_blank_line_title_does_not_cost_the_purchase(shop_request: Any) -> None:
    order = {**ORDER, "lines": [{"title": "\x1c\x00 ", "quantity": 1, "price": "5"}]}
    event = tracify.track_purchase(order, request=shop_request())
    assert event is not None
    assert event.payload["data"]["ITEM1"] == "(untitled)"


def test_a_missing_line_title_is_refused_by_name(shop_request: Any) -> None:
    order = {**ORDER, "lines": [{"title": None, "quantity": 1, "price": "5"}]}
    with pytest.raises(TracifyValidationError) as raised:
        tracify.track_purchase(order, request=shop_request())
    assert (raised.value.field, raised.value.problem) == ("order.lines[0].title", "is missing")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"email": "", "guest_email": "Guest@Example.com"}, "guest@example.com"),
        ({"email": "  ", "guest_email": None}, "u@example.com"),
        ({"email": "", "guest_email": ""}, "u@example.com"),
    ],
)
def test_a_blank_order_email_falls_back_to_the_guest_or_user_email(
    shop_request: Any, fields: dict[str, Any], expected: str
) -> None:
    order = SimpleNamespace(
        number="A-7", total="5.00", currency="EUR", user=SimpleNamespace(email="u@example.com")
    )
    for name, value in fields.items():
        setattr(order, name, value)
    event = tracify.track_purchase(order, request=shop_request())
    assert event is not None
    assert hash_email(expected) in event.payload["identity_data"]
