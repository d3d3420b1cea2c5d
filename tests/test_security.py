"""The security pass: the API key stays secret, the admin's actions are guarded, personal URL
parameters are dropped before anything is stored, and every stored field has a bounded size.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

import django_tracify as tracify
from django_tracify.capture.context import context_from_request
from django_tracify.conf import settings as tracify_conf
from django_tracify.delivery.client import TracifyClient
from django_tracify.delivery.flushing import flush
from django_tracify.errors import TracifyError, TracifyValidationError
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

API_KEY = "tk_live_SECURITY_9QxZv3DistinctiveKey"
CHANGELIST = "/admin/django_tracify/outboxevent/"
ORDER = {"number": "S-1", "total": "10.00", "currency": "EUR", "email": "s@example.com"}


@pytest.fixture(scope="module")
def keyed_receiver() -> Iterator[Receiver]:
    with Receiver(token=API_KEY, host="127.0.0.1") as running:
        yield running


class AllRecords(logging.Handler):
    """Every record of every logger, with its formatted traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.texts.append(text)


@pytest.fixture
def all_logs() -> Iterator[AllRecords]:
    handler = AllRecords()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def due_now() -> None:
    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())


def test_the_api_key_is_never_logged_raised_stored_or_shown(
    keyed_receiver: Receiver,
    tracify_settings: Callable[..., None],
    shop_request: Any,
    all_logs: AllRecords,
) -> None:
    keyed_receiver.reset()
    tracify_settings(
        API_KEY=API_KEY, ENDPOINT=keyed_receiver.endpoint, TIMEOUT=0.5, BATCH_SIZE=2, GZIP=True
    )
    for number in range(4):
        tracify.track_pageview(shop_request(f"/p/{number}/"))
    keyed_receiver.configure({"poison_marker": "/p/3/"})
    keyed_receiver.script(
        "http_500",
        {"kind": "http_429", "retry_after": 1},
        "reset",
        {"kind": "hang", "seconds": 1.5},
        "http_400",
        "status_false",
    )
    errors: list[BaseException] = []
    for _ in range(12):
        due_now()
        result = flush(sleep=lambda seconds: None, max_pause_seconds=0)
        errors.extend(TracifyError(error) for error in result.errors)
    # A wrong key (401), and an endpoint nobody listens on (a connection error).
    tracify_settings(API_KEY=API_KEY[::-1], ENDPOINT=keyed_receiver.endpoint)
    tracify.track_pageview(shop_request("/p/unauthorised/"))
    flush()
    with TracifyClient(endpoint="http://127.0.0.1:9/x", api_key=API_KEY, timeout=0.5) as client:
        try:
            client.post(b"{}")
        except TracifyError as err:
            errors.append(err)
        shown = [repr(client), str(client), repr(client.send([{"type": "pageview"}]))]

    assert {request.fault for request in keyed_receiver.requests()} >= {
        "http_500",
        "http_429",
        "reset",
        "hang",
    }
    assert any(request.status == 401 for request in keyed_receiver.requests())
    assert len(errors) >= 1
    rows = list(OutboxEvent.objects.all())
    assert any(row.status == OutboxStatus.DEAD for row in rows)
    state = FlushState.load()
    shown += [repr(tracify_conf), str(tracify_conf), repr(state), str(state), state.last_message]
    shown += [repr(row) + str(row) + row.last_error + json.dumps(row.payload) for row in rows]
    shown += [repr(context_from_request(shop_request()))]
    shown += ["".join(traceback.format_exception(err)) for err in errors]
    shown += [str(err.__cause__) + repr(err.__cause__) for err in errors if err.__cause__]
    shown += all_logs.texts
    assert len(all_logs.texts) > 10
    for text in shown:
        assert API_KEY not in text
        assert API_KEY[::-1] not in text


def admin_client(*codenames: str, enforce_csrf_checks: bool = False) -> Client:
    user = User.objects.create_user(
        f"staff-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_tracify", codename__in=codenames)
    )
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


def dead_row() -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_type="purchase",
        payload={"type": "purchase"},
        status=OutboxStatus.DEAD,
        last_error="rejected",
    )


def post_action(client: Client, action: str, row: OutboxEvent) -> Any:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [row.pk]})


def test_the_admin_never_shows_the_api_key(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(API_KEY=API_KEY)
    row = dead_row()
    FlushState.objects.create(last_outcome=FlushState.UNAUTHORISED, last_message="401")
    user = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(user)
    for url in (CHANGELIST, f"{CHANGELIST}{row.pk}/change/", "/admin/"):
        page = client.get(url)
        assert page.status_code == 200
        assert API_KEY not in page.content.decode()


@pytest.mark.parametrize("action", ["retry_now", "discard"])
def test_admin_actions_need_the_operate_permission(action: str) -> None:
    row = dead_row()
    viewer = admin_client("view_outboxevent")
    post_action(viewer, action, row)
    row.refresh_from_db()
    assert row.status == OutboxStatus.DEAD

    operator = admin_client("view_outboxevent", "operate_outboxevent")
    post_action(operator, action, row)
    row.refresh_from_db()
    assert row.status == (OutboxStatus.PENDING if action == "retry_now" else OutboxStatus.DISCARDED)


def test_admin_actions_are_refused_without_a_csrf_token() -> None:
    row = dead_row()
    client = admin_client("view_outboxevent", "operate_outboxevent", enforce_csrf_checks=True)
    answer = post_action(client, "retry_now", row)
    assert answer.status_code == 403
    row.refresh_from_db()
    assert row.status == OutboxStatus.DEAD


SESSION_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_tracify.middleware.TracifyMiddleware",
]


@pytest.mark.urls("tests.middleware_views")
def test_excluded_url_parameters_are_dropped_before_anything_is_stored(
    settings: Any, tracify_settings: Callable[..., None]
) -> None:
    settings.MIDDLEWARE = SESSION_MIDDLEWARE
    tracify_settings(EXCLUDE_URL_PARAMS=(*tracify_conf.EXCLUDE_URL_PARAMS, "gclid"))
    secrets = {
        "user_email": "zqsecret-mail-jane@example.com",
        "access_token": "zqsecret-token-4f1c",
        "PassWord": "zqsecret-password-hunter2",
        "reset_code": "zqsecret-code-991",
        "gclid": "zqsecret-gclid-abc",
    }
    client = Client(headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"})
    landing = client.get("/go/?" + urlencode({"utm_source": "newsletter", **secrets}))
    assert landing.status_code == 302
    # Between the landing redirect and the next page the parameters wait in the session.
    kept = [session.get_decoded() for session in Session.objects.all()]
    assert client.get("/page/").status_code == 200

    event = OutboxEvent.objects.get(event_type="pageview")
    assert event.payload["data"]["utm_source"] == "newsletter"
    stored = json.dumps(list(OutboxEvent.objects.values()), default=str)
    stored += json.dumps(kept, default=str)
    stored += json.dumps([s.get_decoded() for s in Session.objects.all()], default=str)
    stored += "".join(str(s.session_data) for s in Session.objects.all())
    assert "newsletter" in json.dumps(kept)
    for name, value in secrets.items():
        assert value not in stored
        assert f'"{name}"' not in stored


def test_long_inputs_are_cut_to_the_documented_sizes(shop_request: Any) -> None:
    params = {f"p{number:02d}_" + "n" * 100: "v" * 1000 for number in range(80)}
    request = shop_request(
        "/" + "a" * 5000 + "?" + urlencode(params),
        HTTP_REFERER="https://ref.example/" + "r" * 5000,
        HTTP_USER_AGENT="Mozilla/5.0 " + "u" * 100_000,
    )
    order = {**ORDER, "number": "o" * 200, "lines": [{"title": "t" * 1000, "quantity": 1}]}
    order["lines"][0]["price"] = "10.00"
    purchase = tracify.track_purchase(order, request=request)
    survey = tracify.track_post_purchase_survey("o" * 200, "s" * 1000, "m" * 1000, request=request)
    assert purchase is not None and survey is not None

    data = purchase.payload["data"]
    assert len(purchase.payload["url"]) == 2048
    assert len(data["Referer"]) == 2048
    url_params = {name: value for name, value in data.items() if name.startswith("p")}
    assert len(url_params) == 50
    assert {len(name) for name in url_params} == {64}
    assert {len(value) for value in url_params.values()} == {512}
    assert len(data["ITEM1"]) == 255
    assert data["order_id"] == "o" * 200
    assert len(survey.payload["data"]["source"]) == len(survey.payload["data"]["medium"]) == 255
    assert all(len(key) == 64 for key in purchase.payload["identity_data"])
    assert purchase.dedup_key is not None and len(purchase.dedup_key) <= 255


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (
            lambda request: tracify.track_purchase({**ORDER, "number": "o" * 201}, request),
            "order.order_id",
        ),
        (lambda request: tracify.track_conversion("c" * 201, "1", "EUR", request), "conversion_id"),
        (
            lambda request: tracify.track_post_purchase_survey("o" * 201, "fb", None, request),
            "order_id",
        ),
    ],
)
def test_an_id_longer_than_200_characters_is_refused_by_name(
    shop_request: Any, call: Callable[[Any], Any], field: str
) -> None:
    with pytest.raises(TracifyValidationError) as raised:
        call(shop_request())
    assert raised.value.field == field
    assert "200" in raised.value.problem


def test_an_invalid_rows_error_quotes_the_bad_value_only_briefly(
    shop_request: Any, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(RAISE_ERRORS=False)
    huge = "zq" + "€" * 100_000
    assert tracify.track_purchase({**ORDER, "currency": huge}, request=shop_request()) is None
    invalid = OutboxEvent.objects.get(status=OutboxStatus.INVALID)
    assert invalid.last_error.startswith("order.currency: 'zq€€")
    assert len(invalid.last_error) < 200
    # Only what says which order and where: never the bad value itself.
    assert invalid.payload == {"url": "https://shop.example.com/", "data": {"order_id": "S-1"}}
