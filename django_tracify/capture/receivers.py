"""The app's receivers for its own signals: each turns a signal into one track_* call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from django_tracify import signals
from django_tracify.capture.tracking import (
    track_addtocart,
    track_conversion,
    track_productview,
    track_purchase,
)

if TYPE_CHECKING:
    from django_tracify.models import OutboxEvent


def on_product_viewed(
    sender: Any, request: HttpRequest | None = None, product: Any = None, **kwargs: Any
) -> OutboxEvent | None:
    return track_productview(request, product=product)


def on_cart_item_added(
    sender: Any,
    request: HttpRequest | None = None,
    product: Any = None,
    quantity: Any = 1,
    **kwargs: Any,
) -> OutboxEvent | None:
    return track_addtocart(request, product=product, quantity=quantity)


def on_order_placed(
    sender: Any,
    order: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    **kwargs: Any,
) -> OutboxEvent | None:
    return track_purchase(order, request=request, identity=identity)


def on_conversion_completed(
    sender: Any,
    conversion_id: Any,
    amount: Any,
    currency: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    **kwargs: Any,
) -> OutboxEvent | None:
    return track_conversion(conversion_id, amount, currency, request=request, identity=identity)


def connect() -> None:
    signals.product_viewed.connect(on_product_viewed, dispatch_uid="tracify.product_viewed")
    signals.cart_item_added.connect(on_cart_item_added, dispatch_uid="tracify.cart_item_added")
    signals.order_placed.connect(on_order_placed, dispatch_uid="tracify.order_placed")
    signals.conversion_completed.connect(
        on_conversion_completed, dispatch_uid="tracify.conversion_completed"
    )
