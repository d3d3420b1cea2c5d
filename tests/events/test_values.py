from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils.functional import lazystr

from django_tracify.errors import TracifyValidationError
from django_tracify.events import values


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("100", "100.00"),
        (100, "100.00"),
        (Decimal("19.99"), "19.99"),
        (19.99, "19.99"),
        (0.1 + 0.2, "0.30"),
        (Decimal("10.005"), "10.01"),
        (" 7.5 ", "7.50"),
        (lazystr("3"), "3.00"),
        (0, "0.00"),
    ],
)
def test_amount_has_exactly_two_decimals(given: object, expected: str) -> None:
    assert values.amount(given, "order.amount") == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (None, "is not an amount"),
        (True, "is not an amount"),
        ("abc", "is not a number"),
        ("", "is not a number"),
        (float("nan"), "is not a finite number"),
        (Decimal("Infinity"), "is not a finite number"),
        ("-1", "is negative"),
        ("1e20", "implausibly large"),
    ],
)
def test_bad_amount_names_the_field(given: object, problem: str) -> None:
    with pytest.raises(TracifyValidationError, match=problem) as caught:
        values.amount(given, "order.amount")
    assert caught.value.field == "order.amount"


@pytest.mark.parametrize("given", ["eur", " EUR ", lazystr("eur")])
def test_currency_is_upper_case_iso(given: object) -> None:
    assert values.currency(given) == "EUR"


@pytest.mark.parametrize("given", [None, "", "EURO", "E1R", "€", 978])
def test_bad_currency(given: object) -> None:
    with pytest.raises(TracifyValidationError, match=r"currency: .* 3-letter ISO 4217"):
        values.currency(given)


@pytest.mark.parametrize(("given", "expected"), [(1, 1), ("2", 2), (Decimal("3.0"), 3)])
def test_quantity(given: object, expected: int) -> None:
    assert values.quantity(given, "quantity") == expected


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (-1, "not positive"),
        (0, "not positive"),
        ("two", "not a whole number"),
        (1.5, "not a whole number"),
        (True, "not a whole number"),
        (None, "not a whole number"),
    ],
)
def test_bad_quantity(given: object, problem: str) -> None:
    with pytest.raises(TracifyValidationError, match=f"quantity: .*{problem}"):
        values.quantity(given, "quantity")


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (None, "is missing"),
        ("  ", "is empty"),
        ("a" * 201, "is longer than"),
        ("a\nb", "contains control characters"),
    ],
)
def test_bad_identifier(given: object, problem: str) -> None:
    with pytest.raises(TracifyValidationError, match=f"order_id: {problem}"):
        values.identifier(given, "order_id")


def test_identifier_accepts_numbers_and_lazy_strings() -> None:
    assert values.identifier(123456789, "order_id") == "123456789"
    assert values.identifier(lazystr(" A-1 "), "order_id") == "A-1"


def test_occurred_is_utc_in_the_providers_format() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    when = dt.datetime(2024, 6, 21, 14, 36, 37, 999, tzinfo=berlin)
    assert values.occurred(when) == "2024-06-21 12:36:37"


def test_naive_datetime_is_read_in_the_current_time_zone() -> None:
    # tests.settings uses Europe/Berlin: 14:00 local in June is 12:00 UTC.
    assert values.occurred(dt.datetime(2024, 6, 21, 14, 0, 0)) == "2024-06-21 12:00:00"


def test_occurred_rejects_a_string() -> None:
    with pytest.raises(TracifyValidationError, match="occurred_at"):
        values.occurred("2024-06-21")


def test_text_collapses_whitespace_and_cuts() -> None:
    assert values.text("  Blue\n  shirt ", "title") == "Blue shirt"
    assert len(values.text("x" * 1000, "title")) == values.MAX_TEXT_LENGTH


def test_text_drops_characters_postgresql_cannot_store() -> None:
    assert values.text("Mug\x00 ☕\x07 \udcff", "title") == "Mug ☕ ?"


def test_identifier_refuses_lone_surrogates() -> None:
    with pytest.raises(TracifyValidationError, match="contains control characters"):
        values.identifier("A-\udcff", "order_id")
