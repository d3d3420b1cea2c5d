"""The outbox admin in Debian's Chromium, driven by Playwright against pytest-django's live server.

Screenshots are saved under artifacts/; artifacts/admin-changelist.png is the admin's picture in
the docs (copy it to docs/admin.png when the admin's look changes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from django_tracify.events.identity import Identity
from django_tracify.models import FlushState, OutboxStatus
from tests.factories import OutboxRow
from tests.services import CHROMIUM_ARGS
from tests.services.common import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = REPO_ROOT / "artifacts"
OUTBOX_PATH = "/admin/django_tracify/outboxevent/"


@pytest.fixture(scope="module")
def browser(chromium_path: str, django_db_setup: None) -> Iterator[Any]:
    # Set up after the test database, and torn down after each test's flush: while Playwright's
    # sync API runs, an event loop sits in this thread and Django refuses ORM calls unless
    # DJANGO_ALLOW_ASYNC_UNSAFE is set. The tests themselves are synchronous.
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    yield context.new_page()
    context.close()


def log_in(page: Any, live_server: Any, username: str, password: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/admin/login/?next={OUTBOX_PATH}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page).to_have_url(f"{live_server.url}{OUTBOX_PATH}")


def visitor(event_type: str, number: int) -> dict[str, Any]:
    """The factory's body parameters for the shop's `number`th visitor (buyers give an email)."""
    return {
        "identity": Identity.from_raw(
            ip=f"198.51.100.{number % 250}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
        ),
        "email": f"customer{number}@example.com" if event_type == "purchase" else None,
        "page": f"https://shop.example.com/products/linen-shirt-{number}/",
        "data": {"utm_source": "newsletter"},
    }


def event(event_type: str, status: str, number: int, minutes_ago: float, **fields: Any) -> Any:
    created = timezone.now() - timedelta(minutes=minutes_ago)
    if status == OutboxStatus.SENT:
        fields.setdefault("sent_at", created + timedelta(seconds=4))
        fields.setdefault("attempts", 1)
        fields.setdefault("last_http_status", 200)
    if event_type in ("purchase", "conversion"):
        fields.setdefault("dedup_key", f"{event_type}:{100000 + number}")
    return OutboxRow(
        event_type=event_type,
        **visitor(event_type, number),
        status=status,
        created_at=created,
        next_attempt_at=created,
        **fields,
    )


def dead(event_type: str, number: int, minutes_ago: float) -> Any:
    return event(
        event_type,
        OutboxStatus.DEAD,
        number,
        minutes_ago,
        attempts=12,
        last_http_status=400,
        last_error='HTTP 400: {"status": false, "error": "amount must have 2 decimals"}',
    )


def test_an_operator_filters_to_dead_events_and_retries_one(page: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    operator = User.objects.create_user("operator", password="s3cret-pass", is_staff=True)
    operator.user_permissions.set(
        Permission.objects.filter(codename__in=["view_outboxevent", "operate_outboxevent"])
    )
    event("pageview", OutboxStatus.SENT, 1, 50)
    failed = dead("purchase", 2, 40)
    other_failed = dead("conversion", 3, 30)
    event("pageview", OutboxStatus.PENDING, 4, 1)

    log_in(page, live_server, "operator", "s3cret-pass")
    page.locator("#changelist-filter").get_by_role("link", name="dead", exact=True).click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#result_list td.field-status_badge")).to_have_text(["dead", "dead"])

    page.locator("#result_list").get_by_role("link", name=str(failed.pk), exact=True).click()
    expect(page.locator("h1")).to_have_text("View outbox event")
    expect(page.locator("pre.tracify-payload")).to_contain_text('"type": "purchase"')
    expect(page.locator(".field-last_error_full")).to_contain_text("amount must have 2 decimals")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-outbox-detail.png"), full_page=True)
    page.go_back()
    expect(page).to_have_url(re.compile(r"status__exact=dead"))

    page.locator(f'input.action-select[value="{failed.pk}"]').check()
    page.select_option("select[name=action]", "retry_now")
    # Django 6.1 renamed the actions button from "Go" to "Run".
    page.get_by_role("button", name=re.compile(r"^(Go|Run)$")).click()
    expect(page.locator(".messagelist")).to_contain_text("1 event queued for the next flush.")
    # Still filtered to dead: only the other failure is left there.
    expect(page.locator("#result_list input.action-select")).to_have_count(1)

    page.locator("#changelist-filter").get_by_role("link", name="pending", exact=True).click()
    retried = page.locator("#result_list tbody tr", has=page.locator(f'a:text-is("{failed.pk}")'))
    expect(retried.locator("td.field-status_badge")).to_have_text("pending")
    expect(retried.locator("td.field-attempts")).to_have_text("0")
    page.screenshot(path=str(ARTIFACTS / "admin-outbox.png"), full_page=True)

    failed.refresh_from_db()
    other_failed.refresh_from_db()
    assert (failed.status, failed.attempts) == (OutboxStatus.PENDING, 0)
    assert other_failed.status == OutboxStatus.DEAD


def test_the_summary_warns_in_red_when_tracify_rejected_the_key(
    page: Any, live_server: Any
) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")
    mix = [
        ("pageview", OutboxStatus.SENT),
        ("productview", OutboxStatus.SENT),
        ("addtocart", OutboxStatus.SENT),
        ("pageview", OutboxStatus.SENT),
        ("purchase", OutboxStatus.SENT),
        ("pageview", OutboxStatus.SENT),
        ("productview", OutboxStatus.SENT),
        ("conversion", OutboxStatus.SENT),
        ("pageview", OutboxStatus.DISCARDED),
        ("productview", OutboxStatus.SENT),
    ]
    for number, (event_type, status) in enumerate(mix * 2):
        event(event_type, status, number, 180 - number * 5)
    dead("purchase", 40, 75)
    OutboxRow(
        event_type="purchase",
        payload={},
        status=OutboxStatus.INVALID,
        last_error="order.lines[1].quantity: '-1' is not positive",
        created_at=timezone.now() - timedelta(minutes=70),
    )
    for number in range(50, 58):
        event(
            ("pageview", "addtocart", "purchase", "productview")[number % 4],
            OutboxStatus.PENDING,
            number,
            (58 - number) * 3,
            attempts=3,
            last_http_status=401,
            last_error="HTTP 401: API key rejected",
        )
    now = timezone.now()
    FlushState.objects.create(
        last_flush_at=now - timedelta(minutes=1),
        last_success_at=now - timedelta(minutes=26),
        last_outcome=FlushState.UNAUTHORISED,
        last_message="HTTP 401 from https://api.tracify.ai/api/v1/events",
    )

    log_in(page, live_server, "admin", "s3cret-pass")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Tracify rejected the API key")
    assert alert.evaluate("node => getComputedStyle(node).color") == "rgb(186, 33, 33)"
    expect(page.locator("#tracify-pending")).to_have_text("8")
    expect(page.locator("#tracify-oldest-pending")).to_have_text(re.compile(r"2\d\sminutes old"))
    expect(page.locator("#tracify-sent-24h")).to_have_text("18")
    expect(page.locator("#tracify-dead")).to_have_text("1")
    expect(page.locator("#tracify-last-success")).to_have_text(re.compile(r"26\sminutes ago"))
    # The manual's picture: the list at full width, as after closing the admin's app sidebar.
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.reload()
    expect(page.locator("#tracify-dead")).to_have_text("1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.screenshot(path=str(ARTIFACTS / "admin-changelist.png"))


@pytest.mark.parametrize(("width", "sidebar"), [(1280, "true"), (1400, "true"), (1280, "false")])
def test_the_list_fits_a_laptop_screen_with_or_without_the_sidebar(
    page: Any, live_server: Any, width: int, sidebar: str
) -> None:
    from playwright.sync_api import expect

    User.objects.create_superuser("admin", "admin@example.com", "s3cret-pass")
    for number in range(6):
        event("purchase", OutboxStatus.PENDING, number, 30 - number, attempts=4)
        dead("conversion", 20 + number, 60 + number)
    event(
        "pageview",
        OutboxStatus.SENT,
        40,
        5,
        attempts=2,
        last_error="HTTPSConnectionPool(host='api.tracify.ai', port=443): Read timed out.",
    )

    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, live_server, "admin", "s3cret-pass")
    page.evaluate(f"localStorage.setItem('django.admin.navSidebarIsOpen', '{sidebar}')")
    page.reload()
    expect(page.locator("#nav-sidebar")).to_be_visible(visible=sidebar == "true")
    results = page.locator("#changelist .results")
    overflow = results.evaluate("node => node.scrollWidth - node.clientWidth")
    page_overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )

    assert overflow <= 0, f"the list scrolls sideways by {overflow}px at {width}px"
    assert page_overflow <= 0, f"the page scrolls sideways by {page_overflow}px at {width}px"
