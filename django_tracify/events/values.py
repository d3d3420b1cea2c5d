"""Validation and formatting of the values that go into an event body."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from django.utils import timezone
from django.utils.encoding import force_str

from django_tracify.errors import TracifyValidationError

CENTS = Decimal("0.01")
MAX_AMOUNT = Decimal("1000000000000")
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 255
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# How far ahead of this server's clock an occurred_at may be (a webhook sender's clock).
CLOCK_SKEW = dt.timedelta(minutes=5)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_EMAIL = re.compile(r"[^@]+@[^@]+\.[^@]+")
# International (+49, 0049, or the + a query string turns into a space) or national (0176,
# (030)) numbers only: bare digits that do not start with 0 are ad and campaign ids.
_PHONE = re.compile(r"(?:\+|\s|0|\(0)[0-9\s().\-/]{6,24}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def amount(value: Any, field: str) -> str:
    """A non-negative money amount as a string with exactly two decimals (half up)."""
    if value is None or isinstance(value, bool):
        raise TracifyValidationError(field, f"{_describe(value)} is not an amount")
    if isinstance(value, float):
        # repr() is the shortest string that round-trips: 19.99 stays 19.99, not 19.989999...
        value = repr(value)
    try:
        number = Decimal(force_str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError, TypeError):
        raise TracifyValidationError(field, f"{_describe(value)} is not a number") from None
    if not number.is_finite():
        raise TracifyValidationError(field, f"{_describe(value)} is not a finite number")
    if number < 0:
        raise TracifyValidationError(field, f"{_describe(value)} is negative")
    if number >= MAX_AMOUNT:
        raise TracifyValidationError(field, f"{_describe(value)} is implausibly large")
    # Decimal keeps the sign of zero: -0.0 would become "-0.00", which Tracify rejects.
    return str(number.copy_abs().quantize(CENTS, rounding=ROUND_HALF_UP))


def currency(value: Any, field: str = "currency") -> str:
    text = force_str(value).strip().upper() if value is not None else ""
    if not _CURRENCY.match(text):
        raise TracifyValidationError(
            field, f"{_describe(value)} is not a 3-letter ISO 4217 code (e.g. 'EUR')"
        )
    return text


def identifier(value: Any, field: str) -> str:
    if value is None or isinstance(value, bool):
        raise TracifyValidationError(field, "is missing")
    text = force_str(value).strip()
    if not text:
        raise TracifyValidationError(field, "is empty")
    if len(text) > MAX_ID_LENGTH:
        raise TracifyValidationError(field, f"is longer than {MAX_ID_LENGTH} characters")
    if printable(text) != text:
        raise TracifyValidationError(field, "contains control characters")
    return text


def quantity(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise TracifyValidationError(field, f"{_describe(value)} is not a whole number")
    try:
        number = Decimal(force_str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise TracifyValidationError(field, f"{_describe(value)} is not a whole number") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise TracifyValidationError(field, f"{_describe(value)} is not a whole number")
    if number < 1:
        raise TracifyValidationError(field, f"{_describe(value)} is not positive")
    if number > 1_000_000:
        raise TracifyValidationError(field, f"{_describe(value)} is implausibly large")
    return int(number)


def printable(value: str) -> str:
    """Without control characters and lone surrogates, which PostgreSQL's jsonb refuses."""
    if value.isprintable():
        return value
    cleaned = "".join(char for char in value if unicodedata.category(char) != "Cc")
    return cleaned.encode("utf-8", "replace").decode("utf-8")


def looks_like_contact(value: str) -> bool:
    """Whether `value` holds an email address, or is a phone number."""
    words = unquote(value).split() if "@" in value or "%40" in value else ()
    if any(_EMAIL.fullmatch(word) for word in words):
        return True
    return bool(_PHONE.fullmatch(value)) and 7 <= sum(char.isdigit() for char in value) <= 15


def text(value: Any, field: str, limit: int = MAX_TEXT_LENGTH) -> str:
    """Free text (a product title): stringified, stripped, cut to `limit` characters."""
    if value is None:
        raise TracifyValidationError(field, "is missing")
    words = (printable(word) for word in force_str(value).split())
    result = " ".join(word for word in words if word)
    if not result:
        raise TracifyValidationError(field, "is empty")
    return result[:limit]


def occurred(value: Any, field: str = "occurred_at", *, max_age_seconds: int | None = None) -> str:
    """When the event occurred, in UTC and Tracify's format; None is now. A naive datetime is
    read in the current time zone, as Django reads one.

    With max_age_seconds, a time more than CLOCK_SKEW ahead of this server's clock or more
    than max_age_seconds ago is refused; one a little ahead (another machine's clock) is now.
    """
    now = timezone.now()
    if value is None:
        value = now
    if not isinstance(value, dt.datetime):
        raise TracifyValidationError(field, f"{_describe(value)} is not a datetime")
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    moment: dt.datetime = value.astimezone(dt.timezone.utc)
    if max_age_seconds is not None:
        if timezone.is_naive(now):  # USE_TZ = False
            now = timezone.make_aware(now)
        now = now.astimezone(dt.timezone.utc)
        if moment > now + CLOCK_SKEW:
            raise TracifyValidationError(
                field,
                f"{moment.strftime(DATETIME_FORMAT)} UTC is in the future "
                f"(more than {CLOCK_SKEW.seconds} s ahead of this server's clock)",
            )
        if moment < now - dt.timedelta(seconds=max_age_seconds):
            raise TracifyValidationError(
                field,
                f"{moment.strftime(DATETIME_FORMAT)} UTC is more than MAX_AGE_SECONDS "
                f"({max_age_seconds} s) ago: an event that old is not sent",
            )
        moment = min(moment, now)
    return moment.strftime(DATETIME_FORMAT)
