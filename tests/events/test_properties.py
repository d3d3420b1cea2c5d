"""Property-based tests (hypothesis) of the public tracking API under arbitrary input.

Properties: with RAISE_ERRORS off no call raises; every stored pending payload passes the
receiver's spec validation; no raw email, IP address, user agent or excluded URL parameter is
stored anywhere in the outbox table; invalid input is reported with the field's name.

Profiles: `tracify-ci` (default, a quick run) and `tracify-thorough`; choose one with
TRACIFY_HYPOTHESIS_PROFILE=tracify-thorough.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.db import connections
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.test import Client, RequestFactory, override_settings
from django.urls import path, re_path
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import django_tracify as tracify
from django_tracify.conf import DEFAULT_EXCLUDE_URL_PARAMS
from django_tracify.errors import TracifyValidationError
from django_tracify.models import OutboxEvent, OutboxStatus
from django_tracify.routers import outbox_database
from tests import middleware_lists
from tests import settings as test_settings
from tracify_receiver import validate_event

settings.register_profile(
    "tracify-ci",
    max_examples=60,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.register_profile(
    "tracify-thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
settings.load_profile(os.environ.get("TRACIFY_HYPOTHESIS_PROFILE", "tracify-ci"))

pytestmark = pytest.mark.django_db

FACTORY = RequestFactory()
SHOP_HOST = "shop.example.com"
LOGGER = "django_tracify"
# Markers use letters that are not hex digits, so no hash, UUID or datetime can contain one.
MARK_LETTERS = "ghijklmnopqrstuvwxyz"
EXCLUDED_WORDS = DEFAULT_EXCLUDE_URL_PARAMS
# Names a shop's landing URL can carry that also name fields of an event body.
TRICKY_PARAM_NAMES = (
    "utm_source",
    "trc_mcmp_id",
    "origin",
    "Referer",
    "type",
    "url",
    "order_id",
    "amount",
    "currency",
    "conversion_id",
    "source",
    "medium",
    "ITEM1",
    "AMT1",
    "QTY1",
    "ITEM7",
    "QTY2",
    "email",
    "user_email",
    "access_token",
    "PASSWORD",
    "promo_code",
    "",
)
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\[\]]*: ")


def marker(role: str) -> st.SearchStrategy[str]:
    """A distinctive raw value for `role`: finding it in the outbox means it was stored."""
    return st.text(MARK_LETTERS, min_size=12, max_size=12).map(lambda s: f"zq{role}{s}")


# --- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Visit:
    """One browser request, and the raw values from it that must never be stored."""

    path: str
    query: str
    ip: str
    host: str = SHOP_HOST
    user_agent: str | None = None
    referer: str | None = None
    forwarded_for: str | None = None
    gpc: str | None = None
    user_email: str | None = None
    secrets: tuple[str, ...] = field(default=())

    def request(self) -> HttpRequest:
        environ = {
            "REMOTE_ADDR": self.ip,
            "HTTP_HOST": self.host,
            "QUERY_STRING": self.query,
            "HTTP_USER_AGENT": self.user_agent,
            "HTTP_REFERER": self.referer,
            "HTTP_X_FORWARDED_FOR": self.forwarded_for,
            "HTTP_SEC_GPC": self.gpc,
        }
        extra: dict[str, Any] = {
            name: as_wsgi(value) for name, value in environ.items() if value is not None
        }
        request = FACTORY.get(self.path, secure=True, **extra)
        if self.user_email is not None:
            request.user = SimpleNamespace(is_authenticated=True, email=self.user_email)  # type: ignore[assignment]
        return request


def as_wsgi(value: str) -> str:
    """What a WSGI server puts in the environ: the UTF-8 bytes, read as latin-1."""
    return value.encode("utf-8", "surrogatepass").decode("latin-1")


octet = st.integers(100, 255).map(str)
ipv4 = st.tuples(octet, octet, octet, octet).map(".".join)
ipv6 = st.ip_addresses(v=6).map(lambda address: address.exploded)
client_ips = st.one_of(ipv4, ipv6)
any_text = st.text(max_size=100)
huge_text = st.integers(3_000, 25_000).map(lambda n: "Ünïcödé/☃ " * (n // 10))


@st.composite
def user_agents(draw: st.DrawFn) -> tuple[str, str]:
    """(user agent, its marker)."""
    mark = draw(marker("ua"))
    before = draw(st.one_of(any_text, huge_text, st.just("Mozilla/5.0 (X11; Linux x86_64) ")))
    return before + mark + draw(any_text), mark


@st.composite
def referers(draw: st.DrawFn) -> tuple[str, str | None]:
    """(Referer, the marker in its query string, which must not be stored)."""
    kind = draw(st.sampled_from(["url", "junk", "long"]))
    if kind == "junk":
        return draw(any_text), None
    mark = draw(marker("ref"))
    path = quote(draw(st.text(max_size=40)))
    if kind == "long":
        path += "r" * draw(st.integers(2048, 9000))
    return f"https://ref.example/{path}?q={mark}", mark


@st.composite
def query_strings(draw: st.DrawFn) -> tuple[str, tuple[str, ...]]:
    """(QUERY_STRING, the values of its excluded parameters, which must not be stored)."""
    if draw(st.booleans()):
        return draw(st.text(max_size=500)), ()
    names = st.one_of(st.sampled_from(TRICKY_PARAM_NAMES), st.text(max_size=100))
    pairs = draw(st.lists(st.tuples(names, st.text(max_size=600)), max_size=60))
    secrets = []
    for word in draw(st.lists(st.sampled_from(EXCLUDED_WORDS), max_size=3)):
        value = draw(marker("sec"))
        pairs.append((f"x_{word.upper()}", value))
        secrets.append(value)
    draw(st.randoms()).shuffle(pairs)
    return urlencode(pairs), tuple(secrets)


@st.composite
def visits(draw: st.DrawFn, junk_host: bool = False, refusing: bool = True) -> Visit:
    ua, ua_mark = draw(user_agents())
    ip = draw(client_ips)
    secrets = [ua_mark, ip]
    referer, ref_mark = draw(st.one_of(st.none().map(lambda _: (None, None)), referers()))
    if ref_mark:
        secrets.append(ref_mark)
    query, query_secrets = draw(query_strings())
    secrets.extend(query_secrets)
    forwarded = None
    if draw(st.booleans()):
        chain = draw(st.lists(st.one_of(client_ips, any_text), min_size=1, max_size=5))
        forwarded = ", ".join(chain)
        secrets.extend(hop for hop in chain if re.fullmatch(r"[0-9.:a-f]{15,}", hop))
    email = None
    if draw(st.booleans()):
        email = draw(emails())
        secrets.append(email.strip().lower())
    host = SHOP_HOST
    if junk_host:
        host = draw(st.one_of(st.just(SHOP_HOST), any_text))
    return Visit(
        path="/" + draw(st.one_of(st.text(max_size=200), huge_text)),
        query=query,
        ip=ip,
        host=host,
        user_agent=ua,
        referer=referer,
        forwarded_for=forwarded,
        gpc=draw(st.sampled_from([None, "1", " 1 ", "0", "?1"] if refusing else [None, "0"])),
        user_email=email,
        secrets=tuple(secrets),
    )


def emails() -> st.SearchStrategy[str]:
    domains = st.sampled_from(["example.com", "Example.ORG", "mail.example.net"])
    return st.builds(
        lambda case, mark, domain, pad: pad + case(mark) + "@" + domain + pad,
        st.sampled_from([str.lower, str.upper, str.title]),
        marker("em"),
        domains,
        st.sampled_from(["", " ", "\t"]),
    )


# --- orders ---------------------------------------------------------------------------------

GOOD_AMOUNTS = st.one_of(
    st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2),
    st.decimals(min_value=0, max_value=Decimal("999999999999"), allow_nan=False),
    st.integers(0, 10**11),
    st.floats(min_value=0, max_value=1e11, allow_nan=False),
    st.decimals(min_value=0, max_value=10**9, places=3).map(str),
    st.just(-0.0),
    st.just(Decimal("-0")),
)
BAD_AMOUNTS = st.one_of(
    st.sampled_from(
        [
            math.nan,
            math.inf,
            -math.inf,
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            "12,50",
            "",
            "   ",
            "abc",
            True,
            10**13,
            "1e400",
        ]
    ),
    st.floats(max_value=-0.01, allow_infinity=False),
    st.decimals(max_value=Decimal("-0.01"), allow_nan=False, allow_infinity=False),
)
GOOD_CURRENCIES = st.one_of(
    st.sampled_from(["EUR", "usd", " gbp ", "Chf"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
)
BAD_CURRENCIES = st.sampled_from(["EU", "EURO", "€", "", "E1R", 978, "E U", None])
GOOD_IDS = st.one_of(
    st.integers(0, 10**12),
    st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=200).filter(
        str.strip
    ),
)
BAD_IDS = st.sampled_from([None, "", "   ", "x" * 201, "a\x00b", "line\nbreak", True])
# A title needs one character that is neither whitespace nor a control character (both dropped).
GOOD_TITLES = st.text(min_size=1, max_size=300).filter(
    lambda title: any(not char.isspace() and unicodedata.category(char) != "Cc" for char in title)
)
# A blank title, or one of only control characters, is sent as "(untitled)"; a missing one is bad.
UNTITLED_TITLES = st.sampled_from(["", " \t\n ", "\x00\x94"])
BAD_TITLES = st.none()
GOOD_QUANTITIES = st.one_of(st.integers(1, 10**6), st.integers(1, 999).map(str))
BAD_QUANTITIES = st.sampled_from([0, -1, 1.5, "x", None, True, 10**7, "nan"])


@dataclass
class OrderCase:
    order: Any
    bad_fields: set[str]
    amount: Any
    lines: list[dict[str, Any]]


def _put(target: dict[str, Any], name: str, value: Any) -> None:
    # None stands for "missing": the key is left out.
    if value is not None:
        target[name] = value


@st.composite
def orders(draw: st.DrawFn, allow_bad: bool = True) -> OrderCase:
    broken = set()
    if allow_bad:
        broken = draw(st.sets(st.sampled_from(["order_id", "currency", "amount", "line"])))
    order_id = draw(BAD_IDS if "order_id" in broken else GOOD_IDS)
    currency = draw(BAD_CURRENCIES if "currency" in broken else GOOD_CURRENCIES)
    amount = draw(BAD_AMOUNTS if "amount" in broken else GOOD_AMOUNTS)
    count = draw(st.one_of(st.integers(0, 4), st.integers(150, 200)))
    lines = []
    for _ in range(count):
        line: dict[str, Any] = {}
        _put(line, "title", draw(st.one_of(GOOD_TITLES, UNTITLED_TITLES)))
        _put(line, "quantity", draw(GOOD_QUANTITIES))
        _put(line, "price", draw(GOOD_AMOUNTS))
        lines.append(line)
    bad_fields = {f"order.{name}" for name in broken - {"line"}}
    if "line" in broken:
        if not lines:
            lines.append({"title": "Spare part", "quantity": 1, "price": "1.00"})
        index = draw(st.integers(0, len(lines) - 1))
        part = draw(st.sampled_from(["title", "quantity", "price"]))
        bad = {"title": BAD_TITLES, "quantity": BAD_QUANTITIES, "price": BAD_AMOUNTS}[part]
        lines[index].pop(part, None)
        _put(lines[index], part, draw(bad))
        bad_fields.add(f"order.lines[{index}].{'unit_price' if part == 'price' else part}")
    order: dict[str, Any] = {}
    _put(order, "number", order_id)
    _put(order, "total", amount)
    _put(order, "currency", currency)
    _put(order, "email", draw(st.one_of(st.none(), emails())))
    order["lines"] = lines
    if draw(st.booleans()):
        return OrderCase(_as_object(order), bad_fields, amount, lines)
    return OrderCase(order, bad_fields, amount, lines)


def _as_object(order: dict[str, Any]) -> SimpleNamespace:
    lines = [SimpleNamespace(**line) for line in order.pop("lines")]
    return SimpleNamespace(**order, lines=lines)


def expected_amount(value: Any) -> str:
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    return str(abs(number.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)))


# --- helpers --------------------------------------------------------------------------------


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(record.getMessage() for record in self.records)


@contextmanager
def tracking(raise_errors: bool, **extra: Any) -> Iterator[Records]:
    """A clean outbox, the given settings and every log record of the example."""
    OutboxEvent.objects.using(outbox_database()).all().delete()
    handler = Records()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with override_settings(
            TRACIFY={**test_settings.TRACIFY, "RAISE_ERRORS": raise_errors, **extra}
        ):
            yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def outbox_dump() -> str:
    """Every column of every outbox row, as stored and as decoded, lower-cased."""
    alias = outbox_database()
    table = OutboxEvent._meta.db_table
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        rows = cursor.fetchall()
    stored = "\n".join(" | ".join(str(value) for value in row) for row in rows)
    decoded = json.dumps(
        list(OutboxEvent.objects.using(alias).values()), default=str, ensure_ascii=False
    )
    return (stored + "\n" + decoded).lower()


def pending_rows() -> list[OutboxEvent]:
    return list(OutboxEvent.objects.using(outbox_database()).filter(status=OutboxStatus.PENDING))


def assert_pending_rows_meet_the_spec() -> None:
    for row in pending_rows():
        assert validate_event(row.payload) == [], row.payload
        payload = row.payload
        assert len(payload["url"]) <= 2048 and "?" not in payload["url"]
        data = payload["data"]
        if "Referer" in data:
            assert len(data["Referer"]) <= 2048 and "?" not in data["Referer"]


def assert_invalid_rows_name_a_field() -> None:
    for row in OutboxEvent.objects.using(outbox_database()).filter(status=OutboxStatus.INVALID):
        assert FIELD_NAME.match(row.last_error), row.last_error
        # Which call it was (its URL, an order or conversion id), never the event body.
        assert set(row.payload) <= {"url", "data"}, row.payload
        assert set(row.payload.get("data", {})) <= {"order_id", "conversion_id"}, row.payload


def call_every_tracker(request: HttpRequest, case: OrderCase, conversion: Any) -> None:
    tracify.track_pageview(request)
    tracify.track_productview(request, product=SimpleNamespace(get_absolute_url=lambda: "/p/1/"))
    tracify.track_addtocart(request, quantity=conversion[3])
    tracify.track_purchase(case.order, request=request)
    tracify.track_conversion(*conversion[:3], request=request)
    tracify.track_post_purchase_survey(conversion[0], source=conversion[4], request=request)
    snapshot = tracify.capture_identity(request)
    if snapshot is not None:
        json.dumps(snapshot)
        tracify.track_conversion("webhook-1", "1.00", "EUR", identity=snapshot)


anything = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=300), st.decimals()
)
conversions = st.tuples(anything, anything, anything, anything, anything)


# --- properties -----------------------------------------------------------------------------


@given(visit=visits(junk_host=True), case=orders(), conversion=conversions)
@example(  # regression: ?ITEM1= on the landing URL made purchases break Tracify's spec
    visit=Visit(path="/", query="ITEM1=&QTY7=2", ip="203.113.100.100", user_agent="UA"),
    case=OrderCase({"number": 1, "total": "1", "currency": "EUR"}, set(), "1", []),
    conversion=(None, None, None, None, None),
)
@example(  # regression: a path with a space gave an event URL with a space in it
    visit=Visit(path="/a b/☃", query="", ip="203.113.100.100", user_agent="UA"),
    case=OrderCase({"number": 1, "total": -0.0, "currency": "EUR"}, set(), -0.0, []),
    conversion=(None, None, None, None, None),
)
def test_with_raise_errors_off_tracking_never_raises(
    visit: Visit, case: OrderCase, conversion: Any
) -> None:
    with tracking(raise_errors=False) as log:
        call_every_tracker(visit.request(), case, conversion)
        assert_pending_rows_meet_the_spec()
        assert_invalid_rows_name_a_field()
        # Bad input is a warning naming the field; an error would be an event lost to a crash.
        assert [r.getMessage() for r in log.records if r.levelno >= logging.ERROR] == []
        if (visit.gpc or "").strip() == "1":
            # Global Privacy Control: nothing about this visitor is stored, not even hashes.
            assert not OutboxEvent.objects.using(outbox_database()).exists()


@given(visit=visits(), case=orders(), conversion=conversions)
def test_no_raw_email_ip_or_user_agent_is_stored(
    visit: Visit, case: OrderCase, conversion: Any
) -> None:
    with tracking(raise_errors=False) as log:
        call_every_tracker(visit.request(), case, conversion)
        dump = outbox_dump()
        order_email = getattr(case.order, "email", None) or (
            case.order.get("email") if isinstance(case.order, dict) else None
        )
        secrets = [*visit.secrets, *([order_email.strip().lower()] if order_email else [])]
        for secret in secrets:
            assert secret.lower() not in dump
            assert secret.lower() not in log.text.lower()


@given(visit=visits(refusing=False), case=orders(allow_bad=False))
def test_valid_orders_become_purchases_that_meet_the_spec(visit: Visit, case: OrderCase) -> None:
    with tracking(raise_errors=True):
        row = tracify.track_purchase(case.order, request=visit.request())
        assert row is not None
        assert validate_event(row.payload) == []
        data = row.payload["data"]
        assert data["amount"] == expected_amount(case.amount)
        items = [key for key in data if re.fullmatch(r"ITEM[0-9]+", key)]
        assert len(items) == len(case.lines)
        for number, line in enumerate(case.lines, start=1):
            assert data[f"AMT{number}"] == expected_amount(line["price"])
            assert data[f"QTY{number}"] == str(int(line["quantity"]))
            assert 0 < len(data[f"ITEM{number}"]) <= 255
            if line["title"] in ("", " \t\n ", "\x00\x94"):
                assert data[f"ITEM{number}"] == "(untitled)"


@given(visit=visits(refusing=False), case=orders().filter(lambda case: bool(case.bad_fields)))
def test_invalid_orders_are_reported_with_the_fields_name(visit: Visit, case: OrderCase) -> None:
    with tracking(raise_errors=True), pytest.raises(TracifyValidationError) as raised:
        tracify.track_purchase(case.order, request=visit.request())
    assert raised.value.field in case.bad_fields
    with tracking(raise_errors=False) as log:
        assert tracify.track_purchase(case.order, request=visit.request()) is None
        invalid = OutboxEvent.objects.using(outbox_database()).get()
        assert invalid.status == OutboxStatus.INVALID
        assert invalid.last_error.startswith(f"{raised.value.field}: ")
        assert f"{raised.value.field}: " in log.text


@given(
    visit=visits(refusing=False),
    conversion_id=st.one_of(GOOD_IDS, BAD_IDS),
    amount=st.one_of(GOOD_AMOUNTS, BAD_AMOUNTS),
    currency=st.one_of(GOOD_CURRENCIES, BAD_CURRENCIES),
)
def test_conversions_are_stored_valid_or_reported_by_field(
    visit: Visit, conversion_id: Any, amount: Any, currency: Any
) -> None:
    with tracking(raise_errors=True):
        try:
            row, problem_field = (
                tracify.track_conversion(conversion_id, amount, currency, request=visit.request()),
                None,
            )
        except TracifyValidationError as err:
            row, problem_field = None, err.field
        if problem_field is not None:
            assert problem_field in ("conversion_id", "amount", "currency")
        else:
            assert row is not None
            assert validate_event(row.payload) == []
            assert row.payload["data"]["amount"] == expected_amount(amount)


# --- through the middleware -------------------------------------------------------------------

SHOP_PAGE = "<!doctype html><title>shop</title><p>Hello</p>"


def shop_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(SHOP_PAGE)


def landing_redirect(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/thanks/")


def thanks(request: HttpRequest) -> HttpResponse:
    tracify.track_purchase({"number": "P-1", "total": "9.90", "currency": "EUR"})
    return HttpResponse(SHOP_PAGE)


urlpatterns = [
    path("go/", landing_redirect),
    path("thanks/", thanks),
    re_path(r"", shop_page),
]


@given(visit=visits())
def test_through_the_middleware_pages_never_break_and_nothing_raw_is_stored(
    visit: Visit,
) -> None:
    headers: dict[str, Any] = {
        name: as_wsgi(value)
        for name, value in {
            "HTTP_USER_AGENT": visit.user_agent,
            "HTTP_REFERER": visit.referer,
            "HTTP_X_FORWARDED_FOR": visit.forwarded_for,
            "HTTP_SEC_GPC": visit.gpc,
        }.items()
        if value is not None
    }
    headers["REMOTE_ADDR"] = visit.ip
    with (
        tracking(raise_errors=False) as log,
        override_settings(MIDDLEWARE=middleware_lists.TRACKED, ROOT_URLCONF=__name__),
    ):
        client = Client()
        page = client.get(visit.path, QUERY_STRING=as_wsgi(visit.query), **headers)
        landing = client.get("/go/", QUERY_STRING=as_wsgi(visit.query), **headers)
        purchase = client.get(landing["Location"], **headers)
        assert (page.status_code, landing.status_code, purchase.status_code) == (200, 302, 200)
        assert_pending_rows_meet_the_spec()
        dump = outbox_dump()
        for secret in visit.secrets:
            assert secret.lower() not in dump
            assert secret.lower() not in log.text.lower()
        if (visit.gpc or "").strip() == "1":
            assert not OutboxEvent.objects.using(outbox_database()).exists()


@settings(max_examples=max(settings.default.max_examples // 2, 10))
@given(visit=visits(), case=orders(), conversion=conversions)
def test_on_postgresql_and_mariadb_every_event_is_stored_or_named_as_invalid(
    shared_outbox: Any, visit: Visit, case: OrderCase, conversion: Any
) -> None:
    with (
        override_settings(DATABASE_ROUTERS=["django_tracify.routers.OutboxRouter"]),
        tracking(raise_errors=False, DATABASE=shared_outbox.alias) as log,
    ):
        call_every_tracker(visit.request(), case, conversion)
        assert_pending_rows_meet_the_spec()
        assert_invalid_rows_name_a_field()
        assert [r.getMessage() for r in log.records if r.levelno >= logging.ERROR] == []
