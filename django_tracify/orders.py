"""The path a shop's ORDER_ADAPTER imports OrderData and OrderLine from (events.orders)."""

from __future__ import annotations

from django_tracify.events.orders import OrderData, OrderLine, default_adapter, order_data

__all__ = ["OrderData", "OrderLine", "default_adapter", "order_data"]
