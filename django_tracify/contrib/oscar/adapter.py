"""Reading django-oscar's Order into OrderData (usable as TRACIFY['ORDER_ADAPTER'] too)."""

from __future__ import annotations

from typing import Any

from django_tracify.events.orders import OrderData, OrderLine


def order_data(order: Any) -> OrderData:
    """Oscar's order number, total including tax and shipping, currency, email and lines."""
    return OrderData(
        order_id=order.number,
        amount=order.total_incl_tax,
        currency=order.currency,
        email=order.email or None,
        lines=[
            OrderLine(line.title, line.quantity, line.unit_price_incl_tax)
            for line in order.lines.all()
        ],
    )
