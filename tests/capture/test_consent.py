from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.http import HttpRequest

from django_tracify.capture.consent import has_consent
from django_tracify.capture.context import context_from_request


def refuse_unless_cookie(request: HttpRequest) -> bool:
    return request.COOKIES.get("tracking") == "ok"


def test_tracking_is_allowed_by_default(shop_request: Any) -> None:
    assert has_consent(shop_request()) is True


def test_global_privacy_control_refuses(shop_request: Any) -> None:
    assert has_consent(shop_request(HTTP_SEC_GPC="1")) is False
    assert has_consent(shop_request(HTTP_SEC_GPC="0")) is True


def test_dnt_refuses_only_with_respect_dnt(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    assert has_consent(shop_request(HTTP_DNT="1")) is True
    tracify_settings(RESPECT_DNT=True)
    assert has_consent(shop_request(HTTP_DNT="1")) is False
    assert has_consent(shop_request()) is True


def test_the_consent_callable_decides_by_dotted_path(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(CONSENT="tests.capture.test_consent.refuse_unless_cookie")
    assert has_consent(shop_request()) is False
    assert has_consent(shop_request(HTTP_COOKIE="tracking=ok")) is True


def test_the_consent_callable_cannot_override_the_browsers_refusal(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(CONSENT=lambda request: True)
    assert has_consent(shop_request(HTTP_SEC_GPC="1")) is False


def test_a_raising_consent_callable_means_no_consent_and_is_logged(
    shop_request: Any, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(CONSENT=lambda request: 1 / 0)
    with caplog.at_level(logging.ERROR, logger="django_tracify"):
        assert has_consent(shop_request()) is False
    assert "ZeroDivisionError" in caplog.text


def test_without_consent_the_context_holds_no_hashes(shop_request: Any) -> None:
    context = context_from_request(shop_request("/?utm_source=fb", HTTP_SEC_GPC="1"))
    assert context.consented is False
    assert context.identity.as_identity_data() == {}
    assert context.url_params == {}
    assert context.url is None
