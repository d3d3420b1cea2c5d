"""The public tracking API: each call builds one event and stores it in the outbox."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from django_tracify import events
from django_tracify.conf import settings
from django_tracify.context import (
    RequestContext,
    context_from_request,
    current_context,
    note_stored,
)
from django_tracify.errors import TracifyValidationError

if TYPE_CHECKING:
    from django_tracify.models import OutboxEvent

logger = logging.getLogger("django_tracify")

REQUEST_ATTRIBUTE = "tracify_context"


def request_context(request: HttpRequest, *, look_up_user: bool = True) -> RequestContext:
    """The context of `request`, built once and kept on the request.

    look_up_user=False (the middleware's own pageview): the email only if it costs no query.
    """
    context = getattr(request, REQUEST_ATTRIBUTE, None)
    if not isinstance(context, RequestContext):
        context = context_from_request(request, look_up_user=look_up_user)
        setattr(request, REQUEST_ATTRIBUTE, context)
    return context


def resolve_context(request: HttpRequest | None, identity: Any = None) -> RequestContext:
    if identity is not None:
        return RequestContext.from_snapshot(identity)
    if request is not None:
        return request_context(request)
    context = current_context()
    if context is None:
        raise TracifyValidationError(
            "request",
            "no request context: pass request= or identity=, or add "
            "django_tracify.middleware.TracifyMiddleware to MIDDLEWARE",
        )
    return context


def record(
    event_type: str,
    build: Callable[[RequestContext], events.Event],
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    returns_row: bool = True,
) -> OutboxEvent | None:
    """Resolve the visitor, build and enqueue; in production no error escapes.

    Nothing is stored for a visitor without consent. An error is logged, and bad input is
    kept as an `invalid` row for the admin. With returns_row=False the stored row is not
    built (None is returned).
    """
    if not settings.ENABLED:
        return None
    from django_tracify import outbox

    try:
        context = resolve_context(request, identity)
        if not context.consented:
            return None
        event = build(context)
        if returns_row:
            row, created = outbox.store(event)
        else:
            row, created = None, outbox.add(event)
        if created:
            note_stored(event.payload)
            if event_type == events.PURCHASE and settings.FLUSH_ON_PURCHASE:
                _flush_soon()
        return row
    except TracifyValidationError as err:
        if settings.RAISE_ERRORS:
            raise
        logger.warning("tracify: %s not recorded: %s", event_type, err)
        _keep_invalid(event_type, str(err))
    except Exception as err:
        if settings.RAISE_ERRORS:
            raise
        logger.exception("tracify: %s not recorded: %s", event_type, type(err).__name__)
    return None


def _flush_soon() -> None:
    try:
        from django_tracify.django_tasks import flush_soon

        flush_soon()
    except Exception:
        # The purchase is stored: the periodic flush delivers it anyway.
        logger.exception("tracify: FLUSH_ON_PURCHASE: the flush task was not enqueued")


def _keep_invalid(event_type: str, problem: str) -> None:
    from django_tracify import outbox

    try:
        outbox.record_invalid(event_type, problem)
    except Exception:
        logger.exception("tracify: could not record the invalid %s in the outbox", event_type)


def track_pageview(request: HttpRequest | None = None) -> OutboxEvent | None:
    """Record a pageview of `request` (or of the current request)."""
    return record(events.PAGEVIEW, events.build_pageview, request)


def track_productview(
    request: HttpRequest | None = None, product: Any = None
) -> OutboxEvent | None:
    """Record that the visitor of `request` viewed a product page."""
    return record(
        events.PRODUCTVIEW, lambda context: events.build_productview(context, product), request
    )


def track_addtocart(
    request: HttpRequest | None = None, product: Any = None, quantity: Any = 1
) -> OutboxEvent | None:
    """Record that the visitor of `request` added `quantity` of a product to the cart."""
    return record(
        events.ADDTOCART,
        lambda context: events.build_addtocart(context, product, quantity),
        request,
    )


def track_purchase(
    order: Any, request: HttpRequest | None = None, identity: Any = None
) -> OutboxEvent | None:
    """Record a purchase. `order` is read through TRACIFY['ORDER_ADAPTER'] (or the default).

    Without `request`, the current request's context is used; from a payment webhook, pass
    `identity=` the snapshot `capture_identity(request)` returned at checkout. One purchase per
    order id is kept: calling it again returns the first row.
    """
    from django_tracify.orders import order_data

    return record(
        events.PURCHASE,
        lambda context: events.build_purchase(context, order_data(order)),
        request,
        identity,
    )


def track_conversion(
    conversion_id: Any,
    amount: Any,
    currency: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
) -> OutboxEvent | None:
    """Record a conversion (a lead, a sign-up); one per conversion id is kept."""
    return record(
        events.CONVERSION,
        lambda context: events.build_conversion(context, conversion_id, amount, currency),
        request,
        identity,
    )


def track_post_purchase_survey(
    order_id: Any,
    source: Any,
    medium: Any = None,
    request: HttpRequest | None = None,
    identity: Any = None,
) -> OutboxEvent | None:
    """Record the channel a customer named after a purchase; one per order id is kept."""
    return record(
        events.POSTPURCHASESURVEY,
        lambda context: events.build_post_purchase_survey(context, order_id, source, medium),
        request,
        identity,
    )


def capture_identity(request: HttpRequest | None = None) -> dict[str, Any] | None:
    """A JSON-serialisable snapshot (hashes only) of the visitor, to store on an order.

    Pass it later as `identity=` where no browser request exists (a payment webhook).
    Returns None when tracking is off or the visitor has not consented.
    """
    if not settings.ENABLED:
        return None
    try:
        context = resolve_context(request)
    except Exception as err:
        if settings.RAISE_ERRORS:
            raise
        logger.warning("tracify: identity not captured: %s", err)
        return None
    return context.to_snapshot() if context.consented else None
