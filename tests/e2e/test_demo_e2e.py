"""The demo end to end: a shopper in Chromium, the example shop, a flush, the receiver.

Starts the processes `make demo` starts (example_project/demo.py), drives Debian's Chromium
through a campaign landing, two product pages, the cart and a guest checkout, flushes the
outbox once, looks at the outbox admin as the demo's staff user and checks what the local
Tracify receiver accepted. Screenshots of the thank-you page, the admin and the receiver
page go to artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from django_tracify.events.identity import hash_email
from example_project.demo_journey import (
    BROWSER_USER_AGENT,
    JOURNEY_TYPES,
    Item,
    Journey,
    check_received,
    journey_events,
)
from example_project.demo_processes import (
    ADMIN_LOGIN,
    LANDING_PARAMS,
    REPO_DIR,
    Demo,
    DemoConfig,
    free_port,
)
from tests.services import CHROMIUM_ARGS

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_DIR / "artifacts"
EMAIL = "  Grace.Hopper@Example.com "


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    config = DemoConfig(free_port(), free_port(), tmp_path / "db.sqlite3")
    output: list[str] = []
    with Demo(config, flusher=False, sink=output.append) as running:
        yield running
    assert running.unclean_exits() == [], "\n".join(output[-40:])


def test_a_shopper_in_chromium_reaches_the_receiver(demo: Demo, chromium_path: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    config = demo.config
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        # HeadlessChrome is a bot's user agent, and bots get no pageviews.
        page = browser.new_page(
            user_agent=BROWSER_USER_AGENT, viewport={"width": 1100, "height": 900}
        )
        page.goto(config.landing_url)

        items = []
        for name, quantity in (("Rain jacket", 2), ("Canvas tote", 1)):
            page.get_by_role("link", name=re.compile(name)).click()
            expect(page.get_by_role("heading", name=name)).to_be_visible()
            price = Decimal(str(page.locator("[data-price]").get_attribute("data-price")))
            page.get_by_label("Quantity").fill(str(quantity))
            page.get_by_role("button", name="Add to cart").click()
            expect(page.get_by_role("heading", name="Your cart")).to_be_visible()
            items.append(Item(name, quantity, price))
            page.get_by_role("link", name="Keep shopping").click()

        page.get_by_role("link", name=re.compile("Cart")).click()
        page.get_by_role("link", name="Checkout").click()
        shipping = Decimal(str(page.locator("[data-shipping]").get_attribute("data-shipping")))
        page.get_by_label("Email for the receipt").fill(EMAIL)
        page.get_by_role("button", name="Place order").click()
        expect(page.get_by_role("heading", name="Thank you!")).to_be_visible()
        number = str(page.locator("[data-order-number]").get_attribute("data-order-number"))
        page.screenshot(path=ARTIFACTS / "demo-shop.png", full_page=True)

        demo.flush()
        received = demo.received()

        page.set_viewport_size({"width": 1400, "height": 900})
        page.goto(config.admin_url)
        page.get_by_label("Username").fill(ADMIN_LOGIN[0])
        page.get_by_label("Password").fill(ADMIN_LOGIN[1])
        page.get_by_role("button", name="Log in").click()
        purchase_row = page.locator("#result_list tr", has_text=f"purchase:{number}")
        expect(purchase_row).to_contain_text("sent")
        page.screenshot(path=ARTIFACTS / "demo-admin.png", full_page=True)

        page.goto(config.receiver_url + "/")
        page.screenshot(path=ARTIFACTS / "demo-receiver.png", full_page=True)
        browser.close()

    journey = Journey(EMAIL, number, tuple(items), shipping)
    events = journey_events(received, journey)
    assert received["counters"]["rejected"] == 0
    assert set(JOURNEY_TYPES) <= {event["type"] for event in events}
    [purchase] = [event for event in events if event["type"] == "purchase"]
    assert purchase["data"] | journey.purchase_data() == purchase["data"]
    assert purchase["data"]["order_id"] == number
    assert (
        purchase["data"]["amount"]
        == f"{sum(i.unit_price * i.quantity for i in items) + shipping:.2f}"
    )
    assert purchase["data"]["currency"] == "EUR"
    assert (purchase["data"]["ITEM1"], purchase["data"]["QTY1"]) == ("Rain jacket", "2")
    assert (purchase["data"]["ITEM2"], purchase["data"]["QTY2"]) == ("Canvas tote", "1")
    assert "ITEM3" not in purchase["data"]
    assert purchase["identity_data"][hash_email(EMAIL)] == 1
    assert EMAIL.strip() not in str(received)
    first = events[0]
    assert {name: first["data"].get(name) for name in LANDING_PARAMS} == LANDING_PARAMS
    assert check_received(received, journey) == []
