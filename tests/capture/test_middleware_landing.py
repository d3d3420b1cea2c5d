"""Landing pages (URL parameters) through TracifyMiddleware: nothing is worked out before the
page is sent unless the session must change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory

from django_tracify.capture.landing import PENDING_COOKIE, SESSION_KEY
from django_tracify.capture.middleware import TracifyMiddleware
from django_tracify.capture.tracking import REQUEST_ATTRIBUTE
from django_tracify.models import OutboxEvent
from tests.conftest import BROWSER_UA

LANDING = "/page/?utm_source=fb&trc_mcmp_id=42"


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("<p>hi</p>")


def redirect(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=302, headers={"Location": "/page/"})


def site(view: Any) -> SessionMiddleware:
    return SessionMiddleware(TracifyMiddleware(view))


@pytest.mark.django_db
def test_a_landing_page_builds_its_context_only_after_it_was_sent(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    consulted: list[HttpRequest] = []
    tracify_settings(CONSENT=lambda request: consulted.append(request) or True)
    request = rf.get(LANDING, HTTP_USER_AGENT=BROWSER_UA)
    response = site(page)(request)
    assert getattr(request, REQUEST_ATTRIBUTE, None) is None
    assert consulted == []
    assert "sessionid" not in response.cookies
    response.close()
    assert consulted == [request]
    [pageview] = OutboxEvent.objects.filter(event_type="pageview")
    assert pageview.payload["data"]["utm_source"] == "fb"
    assert pageview.payload["data"]["trc_mcmp_id"] == "42"


@pytest.mark.django_db
def test_a_landing_redirect_still_keeps_its_parameters_before_it_is_sent(
    rf: RequestFactory,
) -> None:
    request = rf.get("/go/?utm_source=fb", HTTP_USER_AGENT=BROWSER_UA)
    response = site(redirect)(request)
    assert response.cookies[PENDING_COOKIE].value == "1"
    store = SessionStore(response.cookies[settings.SESSION_COOKIE_NAME].value)
    assert store[SESSION_KEY] == {"utm_source": "fb"}


@pytest.mark.django_db
def test_a_landing_page_after_a_redirect_clears_the_session_before_it_is_sent(
    rf: RequestFactory,
) -> None:
    store = SessionStore()
    store[SESSION_KEY] = {"utm_source": "fb"}
    store.create()
    request = rf.get("/page/?utm_medium=cpc", HTTP_USER_AGENT=BROWSER_UA)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = store.session_key
    request.COOKIES[PENDING_COOKIE] = "1"
    response = site(page)(request)
    assert response.cookies[PENDING_COOKIE]["max-age"] == 0
    assert SESSION_KEY not in SessionStore(store.session_key).load()
    response.close()
    [pageview] = OutboxEvent.objects.filter(event_type="pageview")
    assert pageview.payload["data"]["utm_source"] == "fb"
    assert pageview.payload["data"]["utm_medium"] == "cpc"
