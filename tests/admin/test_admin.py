from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tracify.admin import paginator
from django_tracify.events.identity import Identity
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.factories import OutboxRow

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/django_tracify/outboxevent/"
IDENTITY = Identity.from_raw(
    ip="203.0.113.7", user_agent="Mozilla/5.0 Test", email="Buyer@Example.com"
)


def detail_url(event: OutboxEvent) -> str:
    return f"{CHANGELIST}{event.pk}/change/"


def visible_text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def listed_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)]


def column_headers(html: str) -> list[str]:
    head = re.search(r"<thead>.*?</thead>", html, re.S)
    assert head is not None
    return re.findall(r'<div class="text">(?:<a [^>]*>|<span>)([^<]+)<', head.group(0))


def run_action(client: Client, action: str, *events: OutboxEvent) -> Any:
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [e.pk for e in events], "index": 0},
        follow=True,
    )


# --- list --------------------------------------------------------------------------------


def test_changelist_shows_each_column_newest_first(admin_client: Client) -> None:
    sent = OutboxRow(
        event_type="purchase",
        status="sent",
        attempts=1,
        dedup_key="purchase:1001",
        sent_at=timezone.now(),
    )
    error = "HTTP 400: " + "customer_site_id unknown " * 10
    dead = OutboxRow(status="dead", attempts=12, last_error=error)
    html = admin_client.get(CHANGELIST).content.decode()
    assert listed_ids(html) == [dead.pk, sent.pk]
    assert column_headers(html) == [
        "Id",
        "Type",
        "Status",
        "Attempts",
        "Created",
        "Sent",
        "Next attempt",
        "Dedup key",
        "Last error",
    ]
    assert "purchase:1001" in visible_text(html)
    assert 'class="tracify-status tracify-status-dead">dead<' in html
    # The error is cut to one line, the whole text kept in the tooltip.
    assert f'<span title="{error}">{error[:59]}…</span>' in html


def test_next_attempt_is_shown_only_for_pending_rows(admin_client: Client) -> None:
    due = timezone.now() + timedelta(days=400)
    OutboxRow(status="pending", next_attempt_at=due)
    OutboxRow(status="sent", next_attempt_at=due + timedelta(days=400))
    html = admin_client.get(CHANGELIST).content.decode()
    cells = re.findall(r'<td class="field-next_attempt">(.*?)</td>', html)
    assert cells[0] == "-"
    local = timezone.localtime(due)
    assert f'title="{local:%Y-%m-%d %H:%M:%S} {local.tzname()}">' in cells[1]
    assert visible_text(cells[1]) == f"{local:%Y-%m-%d %H:%M}"


def test_a_sent_rows_earlier_error_is_marked_as_history(admin_client: Client) -> None:
    error = "HTTPSConnectionPool(host='api.tracify.ai', port=443): Read timed out."
    sent = OutboxRow(status="sent", attempts=2, last_error=error, sent_at=timezone.now())
    dead = OutboxRow(status="dead", attempts=12, last_error="HTTP 400: bad amount")

    html = admin_client.get(CHANGELIST).content.decode()
    cells = dict(
        zip(
            listed_ids(html),
            re.findall(r'<td class="field-last_error_short">(.*?)</td>', html),
            strict=True,
        )
    )
    assert visible_text(cells[sent.pk]).startswith("Sent after a failed attempt: HTTPSConnection")
    assert 'class="tracify-earlier-error"' in cells[sent.pk]
    assert visible_text(cells[dead.pk]) == "HTTP 400: bad amount"

    detail = admin_client.get(detail_url(sent)).content.decode()
    assert f"Sent after a failed attempt: {error}".replace("'", "&#x27;") in detail


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=dead", {"dead-purchase", "dead-pageview"}),
        ("type=purchase", {"dead-purchase", "sent-purchase"}),
        ("status__exact=dead&type=purchase", {"dead-purchase"}),
        ("created=24h", {"dead-purchase", "dead-pageview", "sent-purchase"}),
    ],
)
def test_filters_on_status_type_and_created(
    admin_client: Client, query: str, expected: set[str]
) -> None:
    old = timezone.now() - timedelta(days=3)
    rows = {
        "dead-purchase": OutboxRow(event_type="purchase", status="dead", dedup_key="purchase:1"),
        "dead-pageview": OutboxRow(event_type="pageview", status="dead"),
        "sent-purchase": OutboxRow(event_type="purchase", status="sent", dedup_key="purchase:2"),
        "old-pageview": OutboxRow(event_type="pageview", status="sent", created_at=old),
    }
    html = admin_client.get(f"{CHANGELIST}?{query}").content.decode()
    assert set(listed_ids(html)) == {rows[name].pk for name in expected}


def test_type_filter_lists_every_event_type_without_reading_the_table(
    admin_client: Client,
) -> None:
    with CaptureQueriesContext(connection) as queries:
        html = admin_client.get(CHANGELIST).content.decode()
    for event_type in ("pageview", "productview", "addtocart", "purchase", "conversion"):
        assert f"?type={event_type}" in html
    assert not [q for q in queries if "DISTINCT" in q["sql"].upper()]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("purchase:1001", {"order-1001"}),  # the exact dedup key
        ("1001", {"order-1001"}),  # an order id: its purchase/conversion/survey key
        ("purchase:10", {"order-1001", "order-10"}),  # a prefix of dedup keys
        ("conversion:lead-7", {"lead-7"}),
        ("lead-7", {"lead-7"}),
        ("chase:1001", set()),  # no infix matching: it would scan the table
    ],
)
def test_search_by_dedup_key(admin_client: Client, term: str, expected: set[str]) -> None:
    rows = {
        "order-1001": OutboxRow(event_type="purchase", dedup_key="purchase:1001"),
        "order-10": OutboxRow(event_type="purchase", dedup_key="purchase:10"),
        "order-21001": OutboxRow(event_type="purchase", dedup_key="purchase:21001"),
        "lead-7": OutboxRow(event_type="conversion", dedup_key="conversion:lead-7"),
    }
    html = admin_client.get(CHANGELIST, {"q": term}).content.decode()
    assert set(listed_ids(html)) == {rows[name].pk for name in expected}


def test_search_by_number_matches_the_id_exactly(admin_client: Client) -> None:
    events = [OutboxRow() for _ in range(12)]
    wanted = events[0]
    for term in (str(wanted.pk), f"#{wanted.pk}"):
        html = admin_client.get(CHANGELIST, {"q": term}).content.decode()
        assert listed_ids(html) == [wanted.pk]


def test_list_and_filters_never_count_the_whole_table(admin_client: Client) -> None:
    for _ in range(3):
        OutboxRow(status="dead", dedup_key=None)
    for query in ("", "?status__exact=dead", "?type=purchase", "?q=purchase:1", "?created=7d"):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(CHANGELIST + query).status_code == 200
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        assert counts, query
        assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_count_above_the_cap_is_shown_as_cap_plus_and_later_pages_still_open(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paginator.EstimatedCountPaginator, "cap", 3)
    monkeypatch.setattr("django_tracify.admin.outbox.OutboxEventAdmin.list_per_page", 2)
    events = [OutboxRow() for _ in range(6)]
    first = admin_client.get(CHANGELIST).content.decode()
    assert '<span class="tracify-result-count">3+</span> outbox events' in first
    assert "Select all 3+ outbox events" in first
    second = admin_client.get(CHANGELIST, {"p": 2}).content.decode()
    assert listed_ids(second) == [events[3].pk, events[2].pk]


def test_a_filtered_list_pages_past_its_capped_count(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(paginator.EstimatedCountPaginator, "cap", 3)
    monkeypatch.setattr("django_tracify.admin.outbox.OutboxEventAdmin.list_per_page", 2)
    events = [OutboxRow(status="dead") for _ in range(9)]  # newest first: 8 7 | 6 5 | 4 3 ...
    dead = {"status__exact": "dead"}
    third = admin_client.get(CHANGELIST, {**dead, "p": 3})
    assert third.status_code == 200  # beyond the 2 pages that the count "3+" makes
    html = third.content.decode()
    assert listed_ids(html) == [events[4].pk, events[3].pk]
    assert "p=4" in html  # a link on to the next page, which has rows
    fifth = admin_client.get(CHANGELIST, {**dead, "p": 5}).content.decode()
    assert listed_ids(fifth) == [events[0].pk]
    assert "p=6" not in fifth
    past_the_end = admin_client.get(CHANGELIST, {**dead, "p": 6})
    assert past_the_end.status_code == 302 and "e=1" in past_the_end["Location"]


def test_unfiltered_list_above_the_cap_shows_the_table_estimate(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What PostgreSQL's pg_class.reltuples would say; other databases have no estimate.
    monkeypatch.setattr(paginator, "estimated_row_count", lambda model, using: 1_234_567)
    monkeypatch.setattr(paginator.EstimatedCountPaginator, "cap", 3)
    for _ in range(5):
        OutboxRow(status="dead")
    unfiltered = admin_client.get(CHANGELIST).content.decode()
    assert '<span class="tracify-result-count">about 1,234,567</span>' in unfiltered
    filtered = admin_client.get(CHANGELIST, {"status__exact": "dead"}).content.decode()
    assert '<span class="tracify-result-count">3+</span>' in filtered


def test_exact_count_below_the_cap(admin_client: Client) -> None:
    for _ in range(2):
        OutboxRow()
    html = admin_client.get(CHANGELIST).content.decode()
    assert '<span class="tracify-result-count">2</span> outbox events' in html


# --- detail ------------------------------------------------------------------------------


def test_detail_shows_payload_identity_url_and_attempt_history(admin_client: Client) -> None:
    event = OutboxRow(
        event_type="purchase",
        identity=IDENTITY,
        page="https://shop.example.com/checkout/thanks",
        data={"utm_campaign": "<script>alert(1)</script>"},
        status="dead",
        attempts=12,
        dedup_key="purchase:1001",
        last_error='HTTP 400: {"status": false, "error": "bad amount"}',
        last_http_status=400,
    )
    html = admin_client.get(detail_url(event)).content.decode()
    assert "https://shop.example.com/checkout/thanks" in html
    assert "400" in html
    assert "HTTP 400: {&quot;status&quot;: false, &quot;error&quot;: &quot;bad" in html
    # Pretty-printed JSON, escaped: a payload cannot inject markup into the admin.
    assert "  &quot;type&quot;: &quot;purchase&quot;,\n  &quot;url&quot;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    for kind, key in (
        ("email", IDENTITY.email),
        ("session", IDENTITY.session),
        ("IP address", IDENTITY.ip),
        ("user agent", IDENTITY.user_agent),
    ):
        assert f"<tr><th>{kind}</th><td><code>{key}</code></td></tr>" in html
    assert "203.0.113.7" not in html


# --- actions -----------------------------------------------------------------------------


def test_retry_now_makes_dead_rows_pending_and_due_with_a_fresh_budget(
    admin_client: Client,
) -> None:
    later = timezone.now() + timedelta(hours=5)
    dead = OutboxRow(status="dead", attempts=12, next_attempt_at=later)
    sent = OutboxRow(status="sent", attempts=1)
    response = run_action(admin_client, "retry_now", dead, sent)
    assert "1 event queued for the next flush." in response.content.decode()
    dead.refresh_from_db()
    sent.refresh_from_db()
    assert (dead.status, dead.attempts) == (OutboxStatus.PENDING, 0)
    assert dead.next_attempt_at <= timezone.now()
    assert sent.status == OutboxStatus.SENT


def test_discard_gives_up_on_pending_rows(admin_client: Client) -> None:
    pending, sent = OutboxRow(status="pending"), OutboxRow(status="sent")
    response = run_action(admin_client, "discard", pending, sent)
    assert "1 event discarded." in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == OutboxStatus.DISCARDED
    warning = run_action(admin_client, "discard", sent).content.decode()
    assert "Nothing changed: only pending or dead events can be discarded." in warning


# --- summary -----------------------------------------------------------------------------


def test_summary_counts_backlog_age_sent_and_dead(admin_client: Client) -> None:
    now = timezone.now()
    OutboxRow(status="pending", created_at=now - timedelta(hours=3, minutes=5))
    OutboxRow(status="pending", created_at=now)
    OutboxRow(status="sent", sent_at=now - timedelta(hours=1))
    OutboxRow(status="sent", sent_at=now - timedelta(hours=30))
    OutboxRow(status="dead")
    OutboxRow(event_type="purchase", status="invalid", payload={}, last_error="order.amount: bad")
    OutboxRow(event_type="purchase", status="invalid", payload={}, last_error="order.lines: empty")
    FlushState.objects.create(
        last_flush_at=now, last_success_at=now - timedelta(minutes=10), last_outcome="ok"
    )
    html = admin_client.get(CHANGELIST).content.decode()
    assert '<dd id="tracify-pending">2</dd>' in html
    assert re.search(
        r'id="tracify-invalid" title="[^"]+"><a href="\?status__exact=invalid">2</a>', html
    )
    assert re.search(
        r'id="tracify-oldest-pending" title="[^"]+">3\xa0hours, 5\xa0minutes old', html
    )
    assert '<dd id="tracify-sent-24h">1</dd>' in html
    assert '<a href="?status__exact=dead">1</a>' in html
    assert re.search(r'id="tracify-last-success" title="[^"]+">10\xa0minutes ago', html)
    assert 'role="alert"' not in html


def test_summary_counts_stop_at_the_cap(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("django_tracify.admin.summary.COUNT_CAP", 2)
    for _ in range(3):
        OutboxRow(status="dead")
    html = admin_client.get(CHANGELIST).content.decode()
    assert '<a href="?status__exact=dead">2+</a>' in html


def test_summary_before_any_flush(admin_client: Client) -> None:
    html = admin_client.get(CHANGELIST).content.decode()
    assert '<dd id="tracify-pending">0</dd>' in html
    assert 'id="tracify-oldest-pending">none' in html
    assert 'id="tracify-last-success">never' in html
    assert not FlushState.objects.exists()  # a GET does not write


def test_a_get_of_the_list_writes_nothing(admin_client: Client) -> None:
    OutboxRow(status="pending")
    OutboxRow(status="dead", last_error="HTTP 400")
    with CaptureQueriesContext(connection) as queries:
        for query in ("", "?status__exact=dead", "?q=purchase:1001", "?q=42"):
            assert admin_client.get(CHANGELIST + query).status_code == 200
    statements = [query["sql"].lstrip().split(None, 1)[0].upper() for query in queries]
    assert set(statements) == {"SELECT"}


def test_summary_shows_a_red_line_when_the_api_key_was_rejected(admin_client: Client) -> None:
    FlushState.objects.create(
        last_flush_at=timezone.now(),
        last_success_at=timezone.now() - timedelta(days=2),
        last_outcome=FlushState.UNAUTHORISED,
        last_message="HTTP 401 from https://api.tracify.ai/api/v1/events",
    )
    html = admin_client.get(CHANGELIST).content.decode()
    alert = re.search(r'<p class="tracify-alert" role="alert">(.*?)</p>', html, re.S)
    assert alert is not None
    assert "Tracify rejected the API key" in alert.group(1)
    assert "HTTP 401 from https://api.tracify.ai/api/v1/events" in alert.group(1)
    assert 'id="tracify-last-success" title' in html
    assert "2\xa0days ago" in html
