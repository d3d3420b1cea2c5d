from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.sessions.backends.signed_cookies import SessionStore

from django_tracify.context import (
    MAX_PARAMS,
    PENDING_COOKIE,
    SESSION_KEY,
    activate,
    context_from_request,
    note_stored,
    settle_url_params,
)


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
    note_stored(stored_payload({"utm_source": "fb"}))  # not current
    assert context.delivery.carried is False
    with activate(context):
        note_stored(stored_payload({}))  # another request's event
        assert context.delivery.carried is False
        note_stored(stored_payload({"utm_source": "fb"}))
    assert context.delivery.carried is True
    settle_url_params(request, context, carried=False)
    assert SESSION_KEY not in request.session
