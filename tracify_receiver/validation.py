"""Check a request body against the Tracify server-side events API (pure functions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

EVENT_KEYS = ("url", "customer_site_id", "identity_data", "datetime", "type", "data")
EVENT_TYPES = (
    "pageview",
    "productview",
    "addtocart",
    "purchase",
    "conversion",
    "postpurchasesurvey",
)
IDENTITY_KINDS = {1: "email", 2: "session", 3: "IP address", 4: "user agent"}
REQUIRED_IDENTITY_KINDS = (3, 4)
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# [0-9] rather than \d: \d also matches non-ASCII digits.
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_HASH = re.compile(r"[0-9a-f]{64}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_URL = re.compile(r"https?://[^\s/?#]+\S*")
_ORIGIN = re.compile(
    r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"[0-9]+\.[0-9]{2}")
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_QUANTITY = re.compile(r"[1-9][0-9]*")
_ITEM_KEY = re.compile(r"(ITEM|AMT|QTY)([0-9]+)")
_ITEM_PARTS = ("ITEM", "AMT", "QTY")

_REQUIRED_DATA = {
    "purchase": ("order_id", "currency", "amount"),
    "conversion": ("conversion_id", "currency", "amount"),
    "postpurchasesurvey": ("order_id", "source"),
}


def show(value: object) -> str:
    """A short, printable form of a value for a problem message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate_body(body: object) -> list[str]:
    """Problems with a whole request body `{"events": [...]}`; empty when it is valid."""
    if not isinstance(body, dict):
        return [f"body: {show(body)} is not a JSON object"]
    problems = [f"body.{key}: unexpected key" for key in body if key != "events"]
    if "events" not in body:
        problems.append("events: missing")
        return problems
    events = body["events"]
    if not isinstance(events, list):
        problems.append(f"events: {show(events)} is not a list")
    elif not events:
        problems.append("events: is an empty list")
    else:
        for index, event in enumerate(events):
            problems.extend(validate_event(event, f"events[{index}]"))
    return problems


def validate_event(event: object, where: str = "event") -> list[str]:
    """Problems with one event; `where` prefixes each message, e.g. "events[2]"."""
    if not isinstance(event, dict):
        return [f"{where}: {show(event)} is not a JSON object"]
    problems = [f"{where}.{key}: missing" for key in EVENT_KEYS if key not in event]
    problems.extend(f"{where}.{key}: unexpected key" for key in event if key not in EVENT_KEYS)
    if "url" in event and not _matches(_URL, event["url"]):
        problems.append(f"{where}.url: {show(event['url'])} is not an http(s) URL")
    if "customer_site_id" in event and not _matches(_UUID, event["customer_site_id"]):
        problems.append(
            f"{where}.customer_site_id: {show(event['customer_site_id'])} is not a UUID"
        )
    if "identity_data" in event:
        problems.extend(_identity_problems(event["identity_data"], f"{where}.identity_data"))
    if "datetime" in event:
        problems.extend(_datetime_problems(event["datetime"], f"{where}.datetime"))
    event_type = event.get("type")
    if "type" in event and event_type not in EVENT_TYPES:
        problems.append(f"{where}.type: {show(event_type)} is not one of {', '.join(EVENT_TYPES)}")
    if "data" in event:
        problems.extend(_data_problems(event["data"], event_type, f"{where}.data"))
    return problems


def _matches(pattern: re.Pattern[str], value: object) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def _identity_problems(identity: object, where: str) -> list[str]:
    if not isinstance(identity, dict):
        return [f"{where}: {show(identity)} is not a JSON object"]
    problems = []
    for key, kind in identity.items():
        if not _matches(_HASH, key):
            problems.append(f"{where}: key {show(key)} is not 64 lower-case hex characters")
        # bool is an int subclass; JSON true is not a kind.
        if isinstance(kind, bool) or not isinstance(kind, int) or kind not in IDENTITY_KINDS:
            problems.append(f"{where}[{show(key)}]: {show(kind)} is not an identity kind 1..4")
    kinds = {kind for kind in identity.values() if type(kind) is int}
    for required in REQUIRED_IDENTITY_KINDS:
        if required not in kinds:
            problems.append(f"{where}: no kind {required} ({IDENTITY_KINDS[required]}) entry")
    return problems


def _datetime_problems(value: object, where: str) -> list[str]:
    if not _matches(_DATETIME, value):
        return [f"{where}: {show(value)} does not match {DATETIME_FORMAT}"]
    try:
        datetime.strptime(str(value), DATETIME_FORMAT)
    except ValueError:
        return [f"{where}: {show(value)} is not a real date and time"]
    return []


def _data_problems(data: object, event_type: object, where: str) -> list[str]:
    if not isinstance(data, dict):
        return [f"{where}: {show(data)} is not a JSON object"]
    problems = [
        f"{where}.{key}: {show(value)} is not a string"
        for key, value in data.items()
        if not isinstance(value, str)
    ]
    strings = {key: value for key, value in data.items() if isinstance(value, str)}
    if "origin" not in data:
        problems.append(f"{where}.origin: missing")
    elif "origin" in strings and not _ORIGIN.fullmatch(strings["origin"]):
        problems.append(
            f"{where}.origin: {show(strings['origin'])} is not an origin (scheme://host[:port])"
        )
    if not isinstance(event_type, str):
        return problems
    for key in _REQUIRED_DATA.get(event_type, ()):
        if key not in data:
            problems.append(f"{where}.{key}: missing")
        elif strings.get(key) == "":
            problems.append(f"{where}.{key}: is empty")
    money = event_type in ("purchase", "conversion")
    currency, amount = strings.get("currency"), strings.get("amount")
    if money and currency is not None and not _CURRENCY.fullmatch(currency):
        problems.append(f"{where}.currency: {show(currency)} is not a 3-letter ISO 4217 code")
    if money and amount is not None and not _AMOUNT.fullmatch(amount):
        problems.append(f"{where}.amount: {show(amount)} is not a string with exactly 2 decimals")
    if event_type == "purchase":
        problems.extend(_item_problems(data, strings, where))
    return problems


def _item_problems(data: Mapping[str, object], strings: Mapping[str, str], where: str) -> list[str]:
    problems = []
    numbers: set[int] = set()
    for key in data:
        match = _ITEM_KEY.fullmatch(key)
        if match is None:
            continue
        digits = match.group(2)
        if digits.startswith("0"):
            problems.append(f"{where}.{key}: items are numbered from 1, without leading zeros")
            continue
        numbers.add(int(digits))
    for number in range(1, max(numbers, default=0) + 1):
        if number not in numbers:
            problems.append(
                f"{where}.ITEM{number}: missing (items are numbered from 1 without gaps)"
            )
            continue
        present = [part for part in _ITEM_PARTS if f"{part}{number}" in data]
        for part in _ITEM_PARTS:
            if part not in present:
                problems.append(
                    f"{where}.{part}{number}: missing ({present[0]}{number} is present)"
                )
        item, amount, quantity = (strings.get(f"{part}{number}") for part in _ITEM_PARTS)
        if item == "":
            problems.append(f"{where}.ITEM{number}: is empty")
        if amount is not None and not _DECIMAL.fullmatch(amount):
            problems.append(f"{where}.AMT{number}: {show(amount)} is not a decimal number")
        if quantity is not None and not _QUANTITY.fullmatch(quantity):
            problems.append(f"{where}.QTY{number}: {show(quantity)} is not a positive whole number")
    return problems
