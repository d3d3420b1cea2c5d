"""Reading a shop's order object into the fields a purchase event needs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django_tracify.conf import settings
from django_tracify.errors import TracifyValidationError

ORDER_ID_NAMES = ("order_id", "number", "pk")
AMOUNT_NAMES = ("total", "amount", "total_incl_tax")
CURRENCY_NAMES = ("currency",)
EMAIL_NAMES = ("email", "guest_email")
LINES_NAMES = ("lines", "items")
TITLE_NAMES = ("title", "name")
QUANTITY_NAMES = ("quantity",)
UNIT_PRICE_NAMES = ("unit_price", "price", "unit_price_incl_tax")

MISSING = object()


@dataclass(frozen=True)
class OrderLine:
    title: Any
    quantity: Any
    unit_price: Any


@dataclass(frozen=True)
class OrderData:
    """What an order adapter returns; values are validated when the event is built."""

    order_id: Any
    amount: Any
    currency: Any
    email: str | None = None
    lines: list[OrderLine] = field(default_factory=list)


def read(source: Any, names: Iterable[str]) -> Any:
    for name in names:
        if isinstance(source, Mapping):
            value = source.get(name, MISSING)
        else:
            value = getattr(source, name, MISSING)
        if value is not MISSING and value is not None:
            return value
    return None


def _emails(order: Any) -> Iterator[Any]:
    for name in EMAIL_NAMES:
        yield read(order, (name,))
    # Only read when the order's own fields are blank: order.user may cost a query.
    yield read(read(order, ("user",)), ("email",))


def _email(order: Any) -> str | None:
    """The first non-blank of order.email, order.guest_email and order.user.email."""
    for email in _emails(order):
        if email is not None and str(email).strip():
            return str(email)
    return None


def _lines(order: Any) -> list[OrderLine]:
    lines = read(order, LINES_NAMES)
    if lines is None:
        return []
    if hasattr(lines, "all") and callable(lines.all):
        lines = lines.all()
    if isinstance(lines, (str, bytes, Mapping)) or not isinstance(lines, Iterable):
        raise TracifyValidationError("order.lines", "is not a list of lines")
    return [
        OrderLine(
            title=read(line, TITLE_NAMES),
            quantity=read(line, QUANTITY_NAMES),
            unit_price=read(line, UNIT_PRICE_NAMES),
        )
        for line in lines
    ]


def default_adapter(order: Any) -> OrderData:
    """Understands common attribute (or dict key) names; see ORDER_ID_NAMES and friends."""
    return OrderData(
        order_id=read(order, ORDER_ID_NAMES),
        amount=read(order, AMOUNT_NAMES),
        currency=read(order, CURRENCY_NAMES) or settings.DEFAULT_CURRENCY,
        email=_email(order),
        lines=_lines(order),
    )


def order_id_of(order: Any) -> Any:
    """The order's id as its adapter reads it, or None (for the report of a bad order)."""
    try:
        if isinstance(order, OrderData):
            return order.order_id
        if settings.ORDER_ADAPTER is None and order is not None:
            return read(order, ORDER_ID_NAMES)  # not the lines: they may be what is wrong
        return order_data(order).order_id
    except Exception:
        return None


def order_data(order: Any) -> OrderData:
    if isinstance(order, OrderData):
        return order
    if order is None:
        raise TracifyValidationError("order", "is missing")
    adapter = settings.ORDER_ADAPTER or default_adapter
    data = adapter(order)
    if not isinstance(data, OrderData):
        data = default_adapter(data)
    return data
