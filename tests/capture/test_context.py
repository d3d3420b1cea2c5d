from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import JsonResponse

import django_tracify as tracify
from django_tracify.capture.context import context_from_request
from django_tracify.capture.landing import (
    MAX_PARAMS,
    PENDING_COOKIE,
    SESSION_KEY,
    note_stored,
    settle_url_params,
)
from django_tracify.capture.middleware import TracifyMiddleware
from django_tracify.models import OutboxEvent, OutboxStatus


def with_session(request: Any, kept: dict[str, str] | None = None) -> Any:
    request.session = SessionStore()
    if kept is not None:
        request.session[SESSION_KEY] = kept
        request.COOKIES[PENDING_COOKIE] = "1"  # set with them, by the middleware
    request.session.accessed = request.session.modified = False
    return request


def stored_payload(data: dict[str, str]) -> dict[str, Any]:
    return {"data": {"origin": "https://shop.example.com", **data}}


def test_the_requests_own_parameters_are_pending(shop_request: Any) -> None:
    context = context_from_request(shop_request("/?utm_source=fb&page=2"))
    assert context.url_params == {"utm_source": "fb", "page": "2"}


def test_parameters_kept_in_the_session_join_the_requests_own(shop_request: Any) -> None:
    request = with_session(
        shop_request("/?utm_medium=cpc"), {"utm_source": "fb", "utm_medium": "x"}
    )
    context = context_from_request(request)
    assert context.url_params == {"utm_source": "fb", "utm_medium": "cpc"}
    assert request.session.accessed is False


def test_kept_parameters_are_filtered_again(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(EXCLUDE_URL_PARAMS=["gclid"])
    request = with_session(shop_request("/"), {"utm_source": "fb", "gclid": "abc"})
    assert context_from_request(request).url_params == {"utm_source": "fb"}


def test_parameter_names_that_look_personal_are_dropped(shop_request: Any) -> None:
    context = context_from_request(
        shop_request("/?utm_source=fb&userEmail=a@b.c&reset_token=x&api_key=y")
    )
    assert context.url_params == {"utm_source": "fb"}


def test_at_most_max_params_are_kept(shop_request: Any) -> None:
    query = "&".join(f"p{number}=v" for number in range(MAX_PARAMS + 10))
    assert len(context_from_request(shop_request("/?" + query)).url_params) == MAX_PARAMS


def test_pending_parameters_no_event_carried_are_kept_in_the_session(shop_request: Any) -> None:
    request = with_session(shop_request("/go/?utm_source=fb"))
    context = context_from_request(request)
    settle_url_params(request, context, carried=False)
    assert request.session[SESSION_KEY] == {"utm_source": "fb"}


def test_carried_parameters_are_cleared_from_the_session(shop_request: Any) -> None:
    request = with_session(shop_request("/"), {"utm_source": "fb"})
    context = context_from_request(request)
    settle_url_params(request, context, carried=True)
    assert SESSION_KEY not in request.session


def test_nothing_pending_leaves_the_session_untouched(shop_request: Any) -> None:
    request = with_session(shop_request("/"))
    settle_url_params(request, context_from_request(request), carried=False)
    assert request.session.modified is False


def test_without_consent_the_session_is_left_alone(shop_request: Any) -> None:
    request = with_session(shop_request("/go/?utm_source=fb", HTTP_SEC_GPC="1"))
    settle_url_params(request, context_from_request(request), carried=False)
    assert request.session.modified is False


def test_a_stored_event_with_the_parameters_marks_them_carried(shop_request: Any) -> None:
    request = with_session(shop_request("/"), {"utm_source": "fb"})
    context = context_from_request(request)
    note_stored(context, stored_payload({}))  # an event from an identity= snapshot, say
    assert context.delivery.carried is False
    note_stored(context, stored_payload({"utm_source": "fb"}))
    assert context.delivery.carried is True
    settle_url_params(request, context, carried=False)
    assert SESSION_KEY not in request.session


ORDER = {"number": "A-1", "total": "9.90", "currency": "EUR"}


@pytest.mark.django_db
@pytest.mark.parametrize("raise_errors", [True, False])
@pytest.mark.parametrize("referer", ["http://[x", "https://[::1/p?q=1", "https://a:b@[x/"])
def test_a_malformed_referer_is_dropped_and_the_purchase_kept(
    shop_request: Any, tracify_settings: Callable[..., None], referer: str, raise_errors: bool
) -> None:
    tracify_settings(RAISE_ERRORS=raise_errors)
    event = tracify.track_purchase(ORDER, request=shop_request("/thanks/", HTTP_REFERER=referer))
    assert event is not None
    assert "Referer" not in event.payload["data"]
    assert OutboxEvent.objects.get().status == OutboxStatus.PENDING


@pytest.mark.django_db
def test_a_snapshot_with_a_malformed_url_falls_back_to_site_url(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(SITE_URL="https://shop.example.com")
    snapshot = tracify.capture_identity(shop_request("/checkout/"))
    assert snapshot is not None
    snapshot.update(url="https://[x/checkout/", referer="http://[x")
    event = tracify.track_purchase(ORDER, identity=snapshot)
    assert event is not None
    assert event.payload["url"] == "https://shop.example.com"
    assert "Referer" not in event.payload["data"]


def test_url_parameters_cannot_pose_as_event_fields(shop_request: Any) -> None:
    query = urlencode(
        {
            "Referer": "https://evil.example/?token=abc",
            "referer": "x",
            "origin": "https://evil.example",
            "order_id": "7",
            "Amount": "0.01",
            "currency": "XXX",
            "conversion_id": "9",
            "item1": "free",
            "QTY2": "3",
            "utm_source": "fb",
        }
    )
    assert context_from_request(shop_request("/?" + query)).url_params == {"utm_source": "fb"}


@pytest.mark.django_db
def test_a_referer_parameter_does_not_become_the_events_referer(shop_request: Any) -> None:
    event = tracify.track_pageview(shop_request("/?Referer=https://evil.example/?token=abc"))
    assert event is not None
    assert "Referer" not in event.payload["data"]
    assert "abc" not in json.dumps(event.payload)


@pytest.mark.django_db
def test_an_event_tracked_with_request_marks_the_parameters_carried(shop_request: Any) -> None:
    def view(request: Any) -> JsonResponse:
        tracify.track_conversion("lead-1", "1", "EUR", request=request)
        return JsonResponse({"ok": True})

    request = with_session(shop_request("/lead/?utm_source=fb"))
    TracifyMiddleware(view)(request)
    assert OutboxEvent.objects.get().payload["data"]["utm_source"] == "fb"
    assert SESSION_KEY not in request.session


@pytest.mark.parametrize(
    "value",
    [
        "jane@example.com",
        "Jane.Doe+ads@Example.co.uk",
        "mail jane@example.com now",
        "jane%40example.com",
        "+49 176 1234567",
        " 491761234567",  # "?utm_term=+491761234567": the + arrives as a space
        "0049-176-1234567",
        "01761234567",
        "(030) 123 4567",
    ],
)
def test_parameter_values_that_look_like_an_email_or_phone_number_are_dropped(
    shop_request: Any, value: str
) -> None:
    request = shop_request("/?" + urlencode({"utm_term": value, "utm_source": "fb"}))
    assert context_from_request(request).url_params == {"utm_source": "fb"}


@pytest.mark.parametrize(
    "value",
    ["120206067078490109", "Cj0KCQjw-gclid_AbC123", "2024-06-21", "summer sale", "0.5", "42"],
)
def test_ids_dates_and_words_are_kept(shop_request: Any, value: str) -> None:
    request = shop_request("/?" + urlencode({"utm_term": value}))
    assert context_from_request(request).url_params == {"utm_term": value}
