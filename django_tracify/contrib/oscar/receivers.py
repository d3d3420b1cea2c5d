"""Receivers for django-oscar's signals: product views, basket additions and placed orders.

Imported only from TracifyOscarConfig.ready(), so that the core never imports Oscar.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, transaction
from django.http import HttpRequest
from oscar.apps.basket.signals import basket_addition
from oscar.apps.catalogue.signals import product_viewed
from oscar.apps.checkout.signals import post_checkout
from oscar.apps.order.signals import order_placed

from django_tracify.capture.context import current_context
from django_tracify.capture.tracking import (
    handle_tracking_error,
    track_addtocart,
    track_productview,
    track_purchase,
)
from django_tracify.conf import settings
from django_tracify.contrib.oscar.adapter import order_data
from django_tracify.events.context import RequestContext
from django_tracify.routers import outbox_database

if TYPE_CHECKING:
    from django_tracify.models import OutboxEvent


def on_product_viewed(
    sender: Any, product: Any = None, request: HttpRequest | None = None, **kwargs: Any
) -> OutboxEvent | None:
    return track_productview(request, product=product)


def added_quantity(view: Any, request: HttpRequest | None) -> Any:
    """What was just added: Oscar's signal carries no quantity, its add-to-basket form does."""
    try:
        posted = request.POST.get("quantity") if request is not None else None
    except Exception:  # a body Django cannot parse: not a reason to break the page
        posted = None
    if posted:
        return posted
    line = getattr(view, "line", None)
    return getattr(line, "quantity", None) or 1


def on_basket_addition(
    sender: Any, product: Any = None, request: HttpRequest | None = None, **kwargs: Any
) -> OutboxEvent | None:
    return track_addtocart(request, product=product, quantity=added_quantity(sender, request))


def record_purchase(
    order: Any, request: HttpRequest | None = None, identity: RequestContext | None = None
) -> OutboxEvent | None:
    """One purchase per Oscar order, in the outbox if and only if the order is committed."""
    if not settings.ENABLED:
        return None
    try:
        data = order_data(order)
    except Exception as err:
        handle_tracking_error(err, "purchase not recorded")
        return None
    order_database = order._state.db or DEFAULT_DB_ALIAS
    if order_database == outbox_database():
        # Same database: the row is written in the order's transaction and rolls back with it.
        return track_purchase(data, request=request, identity=identity)
    transaction.on_commit(
        lambda: track_purchase(data, request=request, identity=identity), using=order_database
    )
    return None


def on_post_checkout(
    sender: Any, order: Any, request: HttpRequest | None = None, **kwargs: Any
) -> OutboxEvent | None:
    return record_purchase(order, request=request)


def on_order_placed(sender: Any, order: Any, **kwargs: Any) -> OutboxEvent | None:
    # Oscar sends no request here. Outside a request served by TracifyMiddleware (a script, a
    # payment webhook) there is no visitor to attribute the order to: post_checkout, or the
    # shop's own track_purchase(order, identity=...), records it instead.
    context = current_context()
    if context is None:
        return None
    return record_purchase(order, identity=context)


def connect() -> None:
    product_viewed.connect(on_product_viewed, dispatch_uid="tracify.oscar.product_viewed")
    basket_addition.connect(on_basket_addition, dispatch_uid="tracify.oscar.basket_addition")
    post_checkout.connect(on_post_checkout, dispatch_uid="tracify.oscar.post_checkout")
    order_placed.connect(on_order_placed, dispatch_uid="tracify.oscar.order_placed")
