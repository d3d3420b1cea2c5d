"""The demo's scripted customer, and what the receiver must have got from its journey."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import requests

from example_project.demo_processes import LANDING_PARAMS, DemoError

CUSTOMER_EMAIL = "Ada.Lovelace@example.com"
# Bot user agents get no pageviews (TRACIFY["TRACK_BOTS"] is off), and a headless browser or
# python-requests looks like a bot: the scripted customers present an ordinary desktop browser.
BROWSER_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
JOURNEY_TYPES = ("pageview", "productview", "addtocart", "purchase")


# --- the scripted customer and what the receiver must have got -------------------------------


@dataclass(frozen=True)
class Item:
    title: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Journey:
    """What a customer did and saw: what Tracify must receive about it."""

    email: str
    order_number: str
    items: tuple[Item, ...]
    shipping: Decimal
    currency: str = "EUR"

    @property
    def amount(self) -> Decimal:
        return sum((item.unit_price * item.quantity for item in self.items), self.shipping)

    def purchase_data(self) -> dict[str, str]:
        data = {
            "order_id": self.order_number,
            "currency": self.currency,
            "amount": f"{self.amount:.2f}",
        }
        for number, item in enumerate(self.items, start=1):
            data[f"ITEM{number}"] = item.title
            data[f"AMT{number}"] = f"{item.unit_price:.2f}"
            data[f"QTY{number}"] = str(item.quantity)
        return data


def _find(pattern: str, text: str, what: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise DemoError(f"the shop's page has no {what} (pattern {pattern!r})")
    return html.unescape(match.group(1))


def _csrf_token(page: str) -> str:
    return _find(r'name="csrfmiddlewaretoken" value="([^"]+)"', page, "CSRF token")


def scripted_journey(shop_url: str, email: str = CUSTOMER_EMAIL) -> Journey:
    """Land with campaign parameters, view two products, add them to the cart, check out."""
    http = requests.Session()
    http.headers["User-Agent"] = BROWSER_USER_AGENT

    def fetch(method: str, path: str, **kwargs: Any) -> str:
        response = http.request(method, shop_url + path, timeout=10, **kwargs)
        if response.status_code != 200:
            raise DemoError(f"{method} {path} answered {response.status_code}")
        return response.text

    landing = fetch("GET", "/?" + urlencode(LANDING_PARAMS))
    product_paths = re.findall(r'class="card" href="(/products/[^"]+/)"', landing)
    if len(product_paths) < 2:
        raise DemoError("the product list shows fewer than 2 products: was demo_seed run?")
    items = []
    for path, quantity in ((product_paths[0], 2), (product_paths[1], 1)):
        page = fetch("GET", path)
        action = _find(r'<form method="post" action="([^"]+)"', page, "add-to-cart form")
        fetch("POST", action, data={"quantity": quantity, "csrfmiddlewaretoken": _csrf_token(page)})
        items.append(
            Item(
                title=_find(r"<h1>(.*?)</h1>", page, "product name"),
                quantity=quantity,
                unit_price=Decimal(_find(r'data-price="([^"]+)"', page, "price")),
            )
        )
    checkout = fetch("GET", "/checkout/")
    thanks = fetch(
        "POST", "/checkout/", data={"email": email, "csrfmiddlewaretoken": _csrf_token(checkout)}
    )
    return Journey(
        email=email,
        order_number=_find(r'data-order-number="([^"]+)"', thanks, "order number"),
        items=tuple(items),
        shipping=Decimal(_find(r'data-shipping="([^"]+)"', checkout, "shipping")),
    )


def session_of(event: dict[str, Any]) -> str | None:
    """The visitor's session key (identity kind 2) in an event."""
    return next((key for key, kind in event["identity_data"].items() if kind == 2), None)


def journey_events(received: dict[str, Any], journey: Journey) -> list[dict[str, Any]]:
    """The accepted events of the journey's visitor, oldest first ([] before the purchase)."""
    events: list[dict[str, Any]] = received["events"]
    purchase = next(
        (
            event
            for event in events
            if event["type"] == "purchase" and event["data"].get("order_id") == journey.order_number
        ),
        None,
    )
    if purchase is None:
        return []
    session = session_of(purchase)
    return [event for event in events if session_of(event) == session]


def check_received(received: dict[str, Any], journey: Journey) -> list[str]:
    """What is missing or wrong in what the receiver accepted about the journey; [] if all ok."""
    from django_tracify.events.identity import hash_email

    problems = []
    rejected = received["counters"]["rejected"]
    if rejected:
        problems.append(f"the receiver rejected {rejected} request(s); see its page")
    events = journey_events(received, journey)
    if not events:
        return [*problems, f"no purchase with order_id {journey.order_number!r} was received"]
    counts = {kind: sum(event["type"] == kind for event in events) for kind in JOURNEY_TYPES}
    expected_counts = {
        "productview": len(journey.items),
        "addtocart": len(journey.items),
        "purchase": 1,
    }
    if counts["pageview"] == 0:
        problems.append("no pageview was received")
    for kind, expected in expected_counts.items():
        if counts[kind] != expected:
            problems.append(f"{counts[kind]} {kind} event(s) received, expected {expected}")
    purchase = next(event for event in events if event["type"] == "purchase")
    for key, value in journey.purchase_data().items():
        if purchase["data"].get(key) != value:
            problems.append(f"purchase {key} is {purchase['data'].get(key)!r}, expected {value!r}")
    if purchase["identity_data"].get(hash_email(journey.email)) != 1:
        problems.append("the purchase does not carry the hash of the customer's email (kind 1)")
    first = events[0]
    for name, value in LANDING_PARAMS.items():
        if first["data"].get(name) != value:
            problems.append(
                f"the first event ({first['type']}) has {name}={first['data'].get(name)!r}, "
                f"expected {value!r} from the landing URL"
            )
    return problems


def describe_events(events: list[dict[str, Any]]) -> Iterator[str]:
    """One line per event: type, URL, and its data except origin and Referer."""
    for event in events:
        data = {k: v for k, v in event["data"].items() if k not in ("origin", "Referer")}
        kinds = sorted(event["identity_data"].values())
        details = " ".join(f"{key}={value}" for key, value in data.items())
        yield f"  {event['type']:<12} {event['url']:<52} identity kinds {kinds} {details}"
