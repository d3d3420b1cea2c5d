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
import requests
import responses
from django.contrib.auth.models import Permission, User
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

import django_tracify as tracify
from django_tracify.capture.context import context_from_request
from django_tracify.checks import check_settings
from django_tracify.conf import API_KEY_MASK
from django_tracify.conf import settings as tracify_conf
from django_tracify.delivery.client import TracifyClient
from django_tracify.delivery.flushing import flush
from django_tracify.errors import TracifyError, TracifyValidationError
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests import middleware_lists
from tests.factories import OutboxRow
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db

API_KEY = "tk_live_SECURITY_9QxZv3DistinctiveKey"
CHANGELIST = "/admin/django_tracify/outboxevent/"
ECHOING_ENDPOINT = "https://tracify.invalid/api/v1/events"
ORDER = {"number": "S-1", "total": "10.00", "currency": "EUR", "email": "s@example.com"}


@pytest.fixture(scope="module")
def keyed_receiver() -> Iterator[Receiver]:
    with Receiver(token=API_KEY, host="127.0.0.1") as running:
        yield running


def due_now() -> None:
    OutboxEvent.objects.filter(status=OutboxStatus.PENDING).update(next_attempt_at=timezone.now())


def test_the_api_key_is_never_logged_raised_stored_or_shown(
    keyed_receiver: Receiver,
    tracify_settings: Callable[..., None],
    shop_request: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
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
    shown.append(caplog.text)  # with each record's traceback
    assert len(caplog.records) > 10
    for text in shown:
        assert API_KEY not in text
        assert API_KEY[::-1] not in text


@responses.activate
def test_a_key_the_server_echoes_is_masked_wherever_it_is_shown(
    tracify_settings: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    tracify_settings(API_KEY=API_KEY, ENDPOINT=ECHOING_ENDPOINT, BATCH_SIZE=2)
    responses.post(ECHOING_ENDPOINT, status=500, json={"error": f"bad key {API_KEY}"})
    responses.post(ECHOING_ENDPOINT, body=requests.ConnectionError(f"proxy: {API_KEY}"))
    responses.post(ECHOING_ENDPOINT, status=401, json={"error": f"invalid token {API_KEY}"})
    responses.post(ECHOING_ENDPOINT, body=RuntimeError("unexpected"))
    OutboxRow.create_batch(2)
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for _ in range(3):
        due_now()
        result = flush(sleep=lambda seconds: None, max_pause_seconds=0)
        texts += [result.summary(), repr(result), FlushState.load().last_message]
    due_now()
    with pytest.raises(RuntimeError) as info:
        flush()
    texts += [str(info.value), repr(info.value), caplog.text]
    texts += [f"{r.last_error} {r!r} {r}" for r in OutboxEvent.objects.all()]
    assert len(responses.calls) == 4
    assert all(API_KEY not in text for text in texts)
    assert any(API_KEY_MASK in text for text in texts)  # the echoed key was masked, not dropped


def test_the_api_key_is_never_in_a_check_message(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(API_KEY=API_KEY, CUSTOMER_SITE_ID="nope", BATCH_SIZE=-1)
    messages = check_settings()
    assert messages
    for message in messages:
        assert API_KEY not in str(message)


def test_the_admin_never_shows_the_api_key(
    admin_client: Client, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(API_KEY=API_KEY)
    row = OutboxRow(
        status=OutboxStatus.DEAD, last_error=f"HTTP 400: echo of header tracify-token: {API_KEY}"
    )
    FlushState.objects.create(
        last_outcome=FlushState.UNAUTHORISED, last_message=f"401 for key {API_KEY}"
    )
    for url in (CHANGELIST, detail_url(row), "/admin/"):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert API_KEY not in page.content.decode()
    for url in (CHANGELIST, detail_url(row)):
        assert "[API key]" in admin_client.get(url).content.decode()


# --- the admin's permissions and CSRF ---------------------------------------------------------


def staff_client(*codenames: str, enforce_csrf_checks: bool = False) -> Client:
    user = User.objects.create_user(
        f"staff-{'-'.join(codenames) or 'none'}", password="pw", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="django_tracify", codename__in=codenames)
    )
    client = Client(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user)
    return client


def detail_url(row: OutboxEvent) -> str:
    return f"{CHANGELIST}{row.pk}/change/"


def post_action(client: Client, action: str, row: OutboxEvent) -> Any:
    return client.post(CHANGELIST, {"action": action, "_selected_action": [row.pk]})


ACTIONS = [
    ("retry_now", "Retry now", OutboxStatus.PENDING),
    ("discard", "Discard", OutboxStatus.DISCARDED),
]


@pytest.mark.parametrize(("action", "label", "after"), ACTIONS)
def test_only_operators_see_and_run_the_actions(action: str, label: str, after: str) -> None:
    row = OutboxRow(status=OutboxStatus.DEAD, last_error="rejected")
    viewer = staff_client("view_outboxevent")
    html = viewer.get(CHANGELIST).content.decode()
    assert detail_url(row) in html
    assert f'value="{action}"' not in html
    post_action(viewer, action, row)
    row.refresh_from_db()
    assert row.status == OutboxStatus.DEAD

    operator = staff_client("view_outboxevent", "operate_outboxevent")
    html = operator.get(CHANGELIST).content.decode()
    assert f'<option value="{action}">{label}</option>' in html
    post_action(operator, action, row)
    row.refresh_from_db()
    assert row.status == after


def test_staff_without_view_permission_cannot_open_the_outbox() -> None:
    assert staff_client("operate_outboxevent").get(CHANGELIST).status_code == 403


def test_rows_cannot_be_added_changed_or_deleted(admin_client: Client) -> None:
    row = OutboxRow(status=OutboxStatus.DEAD)
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    html = admin_client.get(detail_url(row)).content.decode()
    assert 'name="payload"' not in html
    assert 'name="_save"' not in html
    response = admin_client.post(detail_url(row), {"status": "sent", "payload": "{}"})
    assert response.status_code == 403
    assert admin_client.post(f"{CHANGELIST}{row.pk}/delete/").status_code == 403
    row.refresh_from_db()
    assert row.status == OutboxStatus.DEAD


@pytest.mark.parametrize("action", [action for action, _, _ in ACTIONS])
def test_admin_actions_are_refused_without_a_csrf_token(action: str) -> None:
    row = OutboxRow(status=OutboxStatus.DEAD, last_error="rejected")
    client = staff_client("view_outboxevent", "operate_outboxevent", enforce_csrf_checks=True)
    answer = post_action(client, action, row)
    assert answer.status_code == 403
    row.refresh_from_db()
    assert row.status == OutboxStatus.DEAD


# --- personal data and sizes ------------------------------------------------------------------


@pytest.mark.urls("tests.middleware_views")
def test_excluded_url_parameters_are_dropped_before_anything_is_stored(
    settings: Any, tracify_settings: Callable[..., None]
) -> None:
    settings.MIDDLEWARE = middleware_lists.TRACKED
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
