from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.contrib.sessions.models import Session
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.test import AsyncClient, Client, RequestFactory

from django_tracify.capture.landing import PENDING_COOKIE, SESSION_KEY
from django_tracify.capture.middleware import TracifyMiddleware
from django_tracify.capture.tracking import REQUEST_ATTRIBUTE
from django_tracify.events.identity import hash_email, hash_identity
from django_tracify.models import OutboxEvent
from django_tracify.outbox import capture_problems
from tests import middleware_lists
from tests.conftest import BROWSER_UA

pytestmark = [pytest.mark.urls("tests.middleware_views")]

VISITOR_IP = "203.0.113.7"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

Fetch = Callable[..., HttpResponse]


@pytest.fixture(autouse=True)
def tracked_site(settings: Any) -> None:
    settings.MIDDLEWARE = middleware_lists.TRACKED


def sync_browser() -> Fetch:
    client = Client(REMOTE_ADDR=VISITOR_IP)

    def fetch(path: str, method: str = "get", **headers: str) -> HttpResponse:
        headers = {"user-agent": BROWSER_UA, **headers}
        response: HttpResponse = getattr(client, method)(path, headers=headers)
        return response

    return fetch


class VisitorAsyncClient(AsyncClient):
    """AsyncClient from VISITOR_IP: ASGIRequest takes REMOTE_ADDR from the scope's client."""

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)  # type: ignore[misc]
        scope["client"] = [VISITOR_IP, 50000]
        return scope


def async_browser() -> Fetch:
    client = VisitorAsyncClient()

    def fetch(path: str, method: str = "get", **headers: str) -> HttpResponse:
        headers = {"user-agent": BROWSER_UA, **headers}
        response: HttpResponse = async_to_sync(getattr(client, method))(path, headers=headers)
        return response

    return fetch


@pytest.fixture
def browser(db: None) -> Fetch:
    return sync_browser()


# AsyncClient closes the response in another thread, with its own database connection: the
# test's data must be committed for that thread to see it.
@pytest.fixture(params=["sync", "async"])
def any_browser(request: pytest.FixtureRequest, transactional_db: None) -> Fetch:
    return sync_browser() if request.param == "sync" else async_browser()


def pageviews() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.filter(event_type="pageview").order_by("id"))


@pytest.mark.parametrize("path", ["/page/", "/async-page/"])
def test_a_page_a_person_saw_is_one_pageview(any_browser: Fetch, path: str) -> None:
    response = any_browser(path + "?utm_source=newsletter")
    assert response.status_code == 200
    [event] = pageviews()
    assert event.payload["url"] == f"http://testserver{path}"
    assert event.payload["data"]["utm_source"] == "newsletter"
    assert hash_identity(VISITOR_IP) in event.payload["identity_data"]
    assert hash_identity(BROWSER_UA) in event.payload["identity_data"]


@pytest.mark.parametrize("path", ["/thanks/", "/async-thanks/"])
def test_a_purchase_in_a_view_carries_the_requests_identity(any_browser: Fetch, path: str) -> None:
    any_browser(path)
    purchase = OutboxEvent.objects.get(event_type="purchase")
    assert purchase.payload["url"] == f"http://testserver{path}"
    identity_data = purchase.payload["identity_data"]
    assert hash_identity(VISITOR_IP) in identity_data
    assert hash_identity(BROWSER_UA) in identity_data
    assert hash_email("buyer@example.com") in identity_data


@pytest.mark.parametrize("path", ["/tracked/", "/async-tracked/"])
def test_a_view_that_tracks_its_pageview_gets_one_pageview(any_browser: Fetch, path: str) -> None:
    response = any_browser(path)
    [pageview] = pageviews()
    # Asked twice by the view (with and without the request), once more by the middleware.
    assert f"<p>{pageview.pk} {pageview.pk}</p>".encode() in response.content


@pytest.mark.django_db
def test_the_pageview_is_written_when_the_server_closes_the_response(
    rf: RequestFactory,
) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse("<p>hi</p>")

    response = TracifyMiddleware(view)(rf.get("/page/", HTTP_USER_AGENT=BROWSER_UA))
    assert pageviews() == []
    response.close()
    assert len(pageviews()) == 1


# One test per rule: each request below would be a pageview without its rule.


def test_a_post_is_not_a_pageview(browser: Fetch) -> None:
    assert browser("/page/", method="post").status_code == 200
    assert pageviews() == []


def test_an_error_page_is_not_a_pageview(browser: Fetch) -> None:
    assert browser("/missing/").status_code == 404
    assert pageviews() == []


def test_json_is_not_a_pageview(browser: Fetch) -> None:
    assert browser("/json/").status_code == 200
    assert pageviews() == []


def test_a_streamed_response_is_not_a_pageview(browser: Fetch) -> None:
    response = browser("/streamed/")
    assert b"".join(response.streaming_content) == b"<!doctype html><title>shop</title><p>Hello</p>"
    assert pageviews() == []


@pytest.mark.parametrize(
    "headers",
    [
        {"sec-purpose": "prefetch"},
        {"sec-purpose": "prefetch;prerender"},
        {"purpose": "prefetch"},
        {"x-moz": "prefetch"},
    ],
)
def test_a_prefetch_is_not_a_pageview(browser: Fetch, headers: dict[str, str]) -> None:
    assert browser("/page/", **headers).status_code == 200
    assert pageviews() == []


def test_a_fetch_of_an_html_fragment_is_not_a_pageview(browser: Fetch) -> None:
    browser("/page/", **{"sec-fetch-mode": "cors"})
    assert pageviews() == []
    browser("/page/", **{"sec-fetch-mode": "navigate"})
    assert len(pageviews()) == 1


def test_excluded_paths_are_not_pageviews_but_only_whole_segments(
    browser: Fetch, tracify_settings: Callable[..., None]
) -> None:
    browser("/admin/page/")
    assert pageviews() == []
    browser("/healthy-food/")  # "/health" is excluded, "/healthy-food/" is not
    assert len(pageviews()) == 1
    tracify_settings(EXCLUDE_PATHS=["/page"])
    browser("/page/")
    assert len(pageviews()) == 1


def test_crawlers_are_not_pageviews_unless_track_bots(
    browser: Fetch, tracify_settings: Callable[..., None]
) -> None:
    browser("/page/", **{"user-agent": GOOGLEBOT})
    browser("/page/", **{"user-agent": ""})
    assert pageviews() == []
    tracify_settings(TRACK_BOTS=True)
    browser("/page/", **{"user-agent": GOOGLEBOT})
    assert len(pageviews()) == 1


def test_global_privacy_control_means_nothing_is_stored(browser: Fetch) -> None:
    response = browser("/thanks/?utm_source=fb", **{"sec-gpc": "1"})
    assert response.status_code == 200
    assert not OutboxEvent.objects.exists()
    assert "sessionid" not in response.cookies


def test_dnt_is_honoured_with_respect_dnt(
    browser: Fetch, tracify_settings: Callable[..., None]
) -> None:
    browser("/page/", dnt="1")
    assert len(pageviews()) == 1
    tracify_settings(RESPECT_DNT=True)
    browser("/thanks/", dnt="1")
    assert len(pageviews()) == 1
    assert not OutboxEvent.objects.filter(event_type="purchase").exists()


def test_a_consent_callable_decides(browser: Fetch, tracify_settings: Callable[..., None]) -> None:
    tracify_settings(CONSENT=lambda request: request.COOKIES.get("consent") == "yes")
    browser("/page/")
    assert pageviews() == []
    browser("/page/", cookie="consent=yes")
    assert len(pageviews()) == 1


def test_a_raising_consent_callable_does_not_break_the_page(
    browser: Fetch, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: HttpRequest) -> bool:
        raise RuntimeError("consent service down")

    tracify_settings(CONSENT=broken)
    assert browser("/thanks/").status_code == 200
    assert not OutboxEvent.objects.exists()
    assert "CONSENT callable failed" in caplog.text


def test_spoofed_x_forwarded_for_is_ignored_without_trusted_proxies(
    browser: Fetch, tracify_settings: Callable[..., None]
) -> None:
    browser("/page/", **{"x-forwarded-for": "198.51.100.99"})
    assert hash_identity(VISITOR_IP) in pageviews()[0].payload["identity_data"]
    tracify_settings(TRUSTED_PROXY_COUNT=1)
    browser("/page/", **{"x-forwarded-for": "198.51.100.99, 198.51.100.20"})
    identity_data = pageviews()[1].payload["identity_data"]
    assert hash_identity("198.51.100.20") in identity_data
    assert hash_identity("198.51.100.99") not in identity_data


def test_landing_parameters_survive_a_redirect_until_an_event_carries_them(
    browser: Fetch,
) -> None:
    response = browser("/go/?utm_source=fb&trc_mcmp_id=42&email=jane@example.com")
    assert response.status_code == 302
    assert not OutboxEvent.objects.exists()
    browser("/page/")
    browser("/page/")
    first, second = pageviews()
    assert first.payload["data"]["utm_source"] == "fb"
    assert first.payload["data"]["trc_mcmp_id"] == "42"
    assert "email" not in first.payload["data"]
    assert "jane" not in str(first.payload)
    assert "utm_source" not in second.payload["data"]


def test_landing_parameters_carried_by_a_purchase_are_not_sent_again(browser: Fetch) -> None:
    browser("/go/?utm_source=fb")
    browser("/purchase.json")
    browser("/page/")
    purchase = OutboxEvent.objects.get(event_type="purchase")
    assert purchase.payload["data"]["utm_source"] == "fb"
    [pageview] = pageviews()
    assert "utm_source" not in pageview.payload["data"]


def test_without_sessions_parameters_go_only_on_the_landing_requests_events(
    browser: Fetch, settings: Any
) -> None:
    settings.MIDDLEWARE = [middleware_lists.TRACIFY]
    browser("/thanks/?utm_source=fb")
    browser("/go/?utm_source=tv")
    browser("/page/")
    purchase = OutboxEvent.objects.get(event_type="purchase")
    assert purchase.payload["data"]["utm_source"] == "fb"
    first, second = pageviews()
    assert first.payload["data"]["utm_source"] == "fb"
    assert "utm_source" not in second.payload["data"]


def test_a_page_that_does_not_use_the_session_does_not_vary_on_cookie(
    browser: Fetch, settings: Any
) -> None:
    settings.MIDDLEWARE = [middleware_lists.SESSIONS, middleware_lists.TRACIFY]
    browser("/go/?utm_source=fb")  # a session now holds the pending parameters
    assert "sessionid" in browser("/page/").cookies  # carried: cleared from the session
    response = browser("/page/")
    assert "Cookie" not in response.get("Vary", "")
    assert "sessionid" not in response.cookies
    assert pageviews()[0].payload["data"]["utm_source"] == "fb"


def test_tracking_disabled_leaves_pages_alone(
    browser: Fetch, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(ENABLED=False)
    assert browser("/thanks/").status_code == 200
    assert not OutboxEvent.objects.exists()


def test_a_failing_insert_does_not_break_the_page(
    browser: Fetch, tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    for raise_errors in (True, False):
        tracify_settings(RAISE_ERRORS=raise_errors)
        failing = DatabaseError("disk I/O error")
        with mock.patch("django_tracify.outbox.enqueueing._insert", side_effect=failing):
            assert browser("/page/").status_code == 200
        assert "pageview not recorded" in caplog.text
        caplog.clear()
    assert not OutboxEvent.objects.exists()


@pytest.fixture
def missing_outbox_table(transactional_db: None) -> Iterator[None]:
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def test_a_missing_outbox_table_does_not_break_the_page(
    missing_outbox_table: None,
    tracify_settings: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    fetch = sync_browser()
    with caplog.at_level(logging.ERROR, logger="django_tracify"):
        assert fetch("/page/").status_code == 200
        assert fetch("/thanks/").status_code == 200
    assert "pageview not recorded: the outbox database 'default' failed" in caplog.text
    # The outbox failed: tracking pauses; /thanks/'s purchase and pageview are counted, not tried.
    assert capture_problems.unsaved() == {capture_problems.OUTBOX_UNWRITABLE: 3}


def test_a_returning_visitor_costs_no_query_before_the_page_is_sent(
    rf: RequestFactory, db: None
) -> None:
    from django.conf import settings
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.middleware import SessionMiddleware
    from django.test.utils import CaptureQueriesContext

    session = SessionStore()
    session["cart"] = [1]
    session.create()
    request = rf.get("/page/", HTTP_USER_AGENT=BROWSER_UA)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = session.session_key
    site = SessionMiddleware(
        AuthenticationMiddleware(TracifyMiddleware(lambda request: HttpResponse("<p>hi</p>")))
    )
    with CaptureQueriesContext(connection) as queries:
        response = site(request)
    # Nothing pending (no marker cookie): the session is not read for parameters.
    assert queries.captured_queries == []
    response.close()
    assert len(pageviews()) == 1


@pytest.fixture
def logged_in(db: None) -> Fetch:
    from django.contrib.auth.models import User

    client = Client(REMOTE_ADDR=VISITOR_IP)
    client.force_login(User.objects.create_user("ada", "Ada@Example.com", "pw"))

    def fetch(path: str) -> HttpResponse:
        response: HttpResponse = client.get(path, headers={"user-agent": BROWSER_UA})
        return response

    return fetch


@pytest.mark.parametrize(
    ("path", "event_type"), [("/account/", "pageview"), ("/product/", "productview")]
)
def test_a_logged_in_visitors_email_is_on_events_of_pages_that_use_the_user(
    logged_in: Fetch, path: str, event_type: str
) -> None:
    logged_in(path)
    event = OutboxEvent.objects.get(event_type=event_type)
    assert hash_email("ada@example.com") in event.payload["identity_data"]


def test_a_page_that_never_uses_the_user_costs_its_pageview_no_lookup(logged_in: Fetch) -> None:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        logged_in("/page/")
    # Finding the email would have cost the page two queries (session, user) after it was sent.
    statements = [query["sql"].split()[0] for query in queries.captured_queries]
    assert [verb for verb in statements if verb not in ("SAVEPOINT", "RELEASE")] == ["INSERT"]
    [pageview] = pageviews()
    assert hash_email("ada@example.com") not in pageview.payload["identity_data"]
    assert hash_identity(VISITOR_IP) in pageview.payload["identity_data"]


def test_the_pending_marker_cookie_comes_and_goes_with_the_parameters(browser: Fetch) -> None:
    landing = browser("/go/?utm_source=fb")
    marker = landing.cookies[PENDING_COOKIE]
    assert (marker.value, marker["httponly"], marker["max-age"]) == ("1", True, 1209600)
    carried = browser("/page/")
    assert carried.cookies[PENDING_COOKIE]["max-age"] == 0  # deleted
    assert pageviews()[0].payload["data"]["utm_source"] == "fb"
    assert PENDING_COOKIE not in browser("/page/").cookies


def test_a_marker_without_parameters_in_the_session_is_deleted(browser: Fetch) -> None:
    browser("/go/?utm_source=fb")
    Session.objects.all().delete()  # e.g. a logout flushed the session
    response = browser("/page/")
    assert response.cookies[PENDING_COOKIE]["max-age"] == 0
    assert "utm_source" not in pageviews()[0].payload["data"]


def test_the_session_keeps_only_what_is_pending(browser: Fetch) -> None:
    browser("/go/?utm_source=fb&password=hunter2")
    [stored] = [session.get_decoded() for session in Session.objects.all()]
    assert stored[SESSION_KEY] == {"utm_source": "fb"}


@pytest.mark.django_db
def test_a_page_that_tracks_nothing_builds_its_context_after_it_was_sent(
    rf: RequestFactory,
) -> None:
    request = rf.get("/page/", HTTP_USER_AGENT=BROWSER_UA)
    response = TracifyMiddleware(lambda request: HttpResponse("<p>hi</p>"))(request)
    assert getattr(request, REQUEST_ATTRIBUTE, None) is None
    response.close()
    assert getattr(request, REQUEST_ATTRIBUTE).consented is True
