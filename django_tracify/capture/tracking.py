"""The public tracking API: each call builds one event and stores it in the outbox.

atrack_*() and acapture_identity() are the async twins, for async views and other coroutines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from asgiref.sync import sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest

from django_tracify.capture.client_ip import lost_without_client_ip
from django_tracify.capture.context import context_from_request, current_context
from django_tracify.capture.event_loop import defer, in_event_loop, run_outside_loop
from django_tracify.capture.landing import note_stored
from django_tracify.conf import settings
from django_tracify.errors import TracifyValidationError
from django_tracify.events import builders, values
from django_tracify.events.context import RequestContext
from django_tracify.outbox import capture_problems, pause
from django_tracify.routers import outbox_database

if TYPE_CHECKING:
    from django_tracify.models import OutboxEvent

logger = logging.getLogger(__name__)

REQUEST_ATTRIBUTE = "tracify_context"
T = TypeVar("T")


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
    build: Callable[[RequestContext], builders.Event],
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    returns_row: bool = True,
    reference: Callable[[], dict[str, Any]] | None = None,
) -> OutboxEvent | None:
    """Resolve the visitor, build and enqueue; in production no error escapes.

    Nothing is stored for a visitor without consent. An error is logged, and bad input is
    kept as an `invalid` row for the admin, with the request's URL and the ids `reference`
    names (an order id) that are valid. An outbox that cannot be written costs the event,
    counted (capture_problems), and pauses tracking briefly (outbox.pause). With
    returns_row=False the stored row is not built (None is returned).

    In an event loop's thread (an async view, a template it renders), where Django allows no
    query, the call is deferred to TracifyMiddleware (None is returned), else run in a thread.
    """
    if not settings.ENABLED:
        return None
    if in_event_loop():
        call = partial(
            record,
            event_type,
            build,
            request,
            identity,
            returns_row=returns_row,
            reference=reference,
        )
        return None if defer(call) else run_outside_loop(call)
    context: RequestContext | None = None
    try:
        context = resolve_context(request, identity)
        if not context.consented or lost_without_client_ip(context.identity, event_type):
            return None
        if event_type == builders.PAGEVIEW and context.pageview.stored:
            return cast("OutboxEvent | None", context.pageview.row)
        event = build(context)
        row = _store(context, event_type, event, returns_row)
        if event_type == builders.PAGEVIEW:
            context.pageview.stored, context.pageview.row = True, row
        return row
    except Exception as err:
        keep = partial(_keep_invalid_call, event_type, context, reference)
        handle_tracking_error(err, f"{event_type} not recorded", keep_invalid=keep)
    return None


def handle_tracking_error(
    err: Exception,
    failure: str,
    *,
    keep_invalid: Callable[[TracifyValidationError], str] | None = None,
) -> None:
    """The rule for an error while tracking: with RAISE_ERRORS (DEBUG by default) it is raised;
    in production it is logged under `failure` and the page goes on.

    Bad input is logged as a warning, after keep_invalid(err) kept the call as an `invalid`
    row and returned the problem to log; anything else is logged with its traceback.
    """
    if settings.RAISE_ERRORS:
        raise err
    if isinstance(err, TracifyValidationError):
        problem = keep_invalid(err) if keep_invalid is not None else str(err)
        logger.warning("tracify: %s: %s", failure, problem)
    else:
        logger.exception("tracify: %s: %s", failure, type(err).__name__)


def _keep_invalid_call(
    event_type: str,
    context: RequestContext | None,
    reference: Callable[[], dict[str, Any]] | None,
    err: TracifyValidationError,
) -> str:
    ids = _valid_ids(reference)
    problem = _with_ids(str(err), ids)
    _keep_invalid(event_type, problem, _invalid_payload(context, ids))
    return problem


def _flush_soon() -> None:
    try:
        from django_tracify.django_tasks import flush_soon

        flush_soon()
    except Exception:
        # The purchase is stored: the periodic flush delivers it anyway.
        logger.exception("tracify: FLUSH_ON_PURCHASE: the flush task was not enqueued")


def _store(
    context: RequestContext, event_type: str, event: builders.Event, returns_row: bool
) -> OutboxEvent | None:
    from django_tracify import outbox

    def write() -> tuple[OutboxEvent | None, bool]:
        return outbox.store(event) if returns_row else (None, outbox.add(event))

    written = _outbox_write(event_type, write)
    if written is None:
        return None
    row, created = written
    if created:
        note_stored(context, event.payload)
        if event_type == builders.PURCHASE and settings.FLUSH_ON_PURCHASE:
            _flush_soon()
    return row


def _outbox_write(what: str, write: Callable[[], T]) -> T | None:
    """write()'s result, or None when the outbox could not be written: the event is counted
    as lost (capture_problems) and a database error pauses tracking (outbox.pause)."""
    using = outbox_database()
    if pause.is_paused(using):
        capture_problems.record(capture_problems.OUTBOX_UNWRITABLE)
        return None
    try:
        result = write()
    except DatabaseError as err:
        _write_failed(using, err, what)
        return None
    capture_problems.save_after_write(using)
    return result


def _valid_ids(reference: Callable[[], dict[str, Any]] | None) -> dict[str, str]:
    """The ids a bad call carries that are valid themselves: what the admin can show."""
    try:
        candidates = reference() if reference is not None else {}
    except Exception:
        return {}
    ids: dict[str, str] = {}
    for name, value in candidates.items():
        with suppress(TracifyValidationError):
            ids[name] = values.identifier(value, name)
    return ids


def _with_ids(problem: str, ids: dict[str, str]) -> str:
    # After the problem, which starts with the field's name; the admin list shows both.
    return problem + "".join(f" [{name} {value}]" for name, value in ids.items())


def _invalid_payload(context: RequestContext | None, ids: dict[str, str]) -> dict[str, Any]:
    # Domain + path and ids only: the invalid row never holds an email, IP or user agent.
    payload: dict[str, Any] = {}
    if context is not None and context.url:
        payload["url"] = context.url
    if ids:
        payload["data"] = ids
    return payload


def _keep_invalid(event_type: str, problem: str, payload: dict[str, Any]) -> None:
    from django_tracify import outbox

    try:
        _outbox_write(
            f"invalid {event_type}", partial(outbox.record_invalid, event_type, problem, payload)
        )
    except Exception:
        logger.exception("tracify: could not record the invalid %s in the outbox", event_type)


def _write_failed(using: str, err: DatabaseError, event_type: str) -> None:
    """Count and log a failed outbox write: raised only with RAISE_ERRORS."""
    capture_problems.record(capture_problems.OUTBOX_UNWRITABLE)
    pause.note_failure(using, err, event_type)
    if settings.RAISE_ERRORS:
        raise err


def track_pageview(request: HttpRequest | None = None) -> OutboxEvent | None:
    """Record a pageview of `request` (or of the current request).

    One per request: asked again (or by TracifyMiddleware, after the page was sent), nothing
    more is stored and the first row is returned.
    """
    return record(builders.PAGEVIEW, builders.build_pageview, request)


def track_productview(
    request: HttpRequest | None = None, product: Any = None
) -> OutboxEvent | None:
    """Record that the visitor of `request` viewed a product page."""
    return record(
        builders.PRODUCTVIEW, lambda context: builders.build_productview(context, product), request
    )


def track_addtocart(
    request: HttpRequest | None = None, product: Any = None, quantity: Any = 1
) -> OutboxEvent | None:
    """Record that the visitor of `request` added `quantity` of a product to the cart."""
    return record(
        builders.ADDTOCART,
        lambda context: builders.build_addtocart(context, product, quantity),
        request,
    )


def track_purchase(
    order: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """Record a purchase. `order` is read through TRACIFY['ORDER_ADAPTER'] (or the default).

    Without `request`, the current request's context is used; from a payment webhook, pass
    `identity=` the snapshot `capture_identity(request)` returned at checkout, and
    `occurred_at=` when the order was placed (default: now). One purchase per order id is
    kept: calling it again returns the first row.
    """
    from django_tracify.events.orders import order_data, order_id_of

    return record(
        builders.PURCHASE,
        lambda context: builders.build_purchase(
            context, order_data(order), occurred_at=occurred_at
        ),
        request,
        identity,
        reference=lambda: {"order_id": order_id_of(order)},
    )


def track_conversion(
    conversion_id: Any,
    amount: Any,
    currency: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """Record a conversion (a lead, a sign-up); one per conversion id is kept."""
    return record(
        builders.CONVERSION,
        lambda context: builders.build_conversion(
            context, conversion_id, amount, currency, occurred_at=occurred_at
        ),
        request,
        identity,
        reference=lambda: {"conversion_id": conversion_id},
    )


def track_post_purchase_survey(
    order_id: Any,
    source: Any,
    medium: Any = None,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """Record the channel a customer named after a purchase; one per order id is kept."""
    return record(
        builders.POSTPURCHASESURVEY,
        lambda context: builders.build_post_purchase_survey(
            context, order_id, source, medium, occurred_at=occurred_at
        ),
        request,
        identity,
        reference=lambda: {"order_id": order_id},
    )


def capture_identity(request: HttpRequest | None = None) -> dict[str, Any] | None:
    """A JSON-serialisable snapshot (hashes only) of the visitor, to store on an order.

    Pass it later as `identity=` where no browser request exists (a payment webhook).
    Returns None when tracking is off or the visitor has not consented.
    """
    if not settings.ENABLED:
        return None
    if in_event_loop():
        return run_outside_loop(partial(capture_identity, request))
    try:
        context = resolve_context(request)
    except Exception as err:
        handle_tracking_error(err, "identity not captured")
        return None
    return context.to_snapshot() if context.consented else None


async def atrack_pageview(request: HttpRequest | None = None) -> OutboxEvent | None:
    """track_pageview() for async code: the row is written in a thread (sync_to_async)."""
    return await sync_to_async(track_pageview)(request)


async def atrack_productview(
    request: HttpRequest | None = None, product: Any = None
) -> OutboxEvent | None:
    """track_productview() for async code."""
    return await sync_to_async(track_productview)(request, product=product)


async def atrack_addtocart(
    request: HttpRequest | None = None, product: Any = None, quantity: Any = 1
) -> OutboxEvent | None:
    """track_addtocart() for async code."""
    return await sync_to_async(track_addtocart)(request, product=product, quantity=quantity)


async def atrack_purchase(
    order: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """track_purchase() for async code; the order is read in the thread too (its lines may
    be a related manager)."""
    return await sync_to_async(track_purchase)(
        order, request=request, identity=identity, occurred_at=occurred_at
    )


async def atrack_conversion(
    conversion_id: Any,
    amount: Any,
    currency: Any,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """track_conversion() for async code."""
    return await sync_to_async(track_conversion)(
        conversion_id, amount, currency, request=request, identity=identity, occurred_at=occurred_at
    )


async def atrack_post_purchase_survey(
    order_id: Any,
    source: Any,
    medium: Any = None,
    request: HttpRequest | None = None,
    identity: Any = None,
    *,
    occurred_at: datetime | None = None,
) -> OutboxEvent | None:
    """track_post_purchase_survey() for async code."""
    return await sync_to_async(track_post_purchase_survey)(
        order_id, source, medium, request=request, identity=identity, occurred_at=occurred_at
    )


async def acapture_identity(request: HttpRequest | None = None) -> dict[str, Any] | None:
    """capture_identity() for async code: reading the session and user may query."""
    return await sync_to_async(capture_identity)(request)
