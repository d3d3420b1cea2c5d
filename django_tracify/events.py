"""Building the event body Tracify receives, one builder per event type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from django_tracify import values
from django_tracify.conf import settings
from django_tracify.context import MAX_URL_LENGTH, RequestContext, cut
from django_tracify.errors import TracifyValidationError
from django_tracify.identity import KIND_IP, KIND_USER_AGENT
from django_tracify.orders import OrderData

PAGEVIEW = "pageview"
PRODUCTVIEW = "productview"
ADDTOCART = "addtocart"
PURCHASE = "purchase"
CONVERSION = "conversion"
POSTPURCHASESURVEY = "postpurchasesurvey"
UNTITLED = "(untitled)"
EVENT_TYPES = (PAGEVIEW, PRODUCTVIEW, ADDTOCART, PURCHASE, CONVERSION, POSTPURCHASESURVEY)


@dataclass(frozen=True)
class Event:
    """A validated event body and the key that keeps it unique in the outbox (if any)."""

    event_type: str
    payload: dict[str, Any]
    dedup_key: str | None = None


def _url_and_origin(context: RequestContext, path: str | None) -> tuple[str, str]:
    url = context.url
    if not url and settings.SITE_URL:
        url = urljoin(settings.SITE_URL + "/", path.lstrip("/")) if path else settings.SITE_URL
    if not url:
        raise TracifyValidationError(
            "url",
            "is unknown: pass request=, or identity= from capture_identity(), "
            "or set TRACIFY['SITE_URL']",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TracifyValidationError("url", f"{url[:60]!r} is not an absolute http(s) URL")
    origin = context.origin or f"{parts.scheme}://{parts.netloc}"
    return cut(url, MAX_URL_LENGTH), origin


def _identity_data(context: RequestContext, email: str | None) -> dict[str, int]:
    identity_data = context.identity.with_email(email).as_identity_data()
    kinds = set(identity_data.values())
    if KIND_IP not in kinds or KIND_USER_AGENT not in kinds:
        raise TracifyValidationError(
            "identity_data",
            "the IP address and user agent are required: pass request=, or identity= from "
            "capture_identity(), or call it inside a request served by TracifyMiddleware",
        )
    return identity_data


def build(
    event_type: str,
    context: RequestContext,
    data: dict[str, str] | None = None,
    *,
    occurred_at: Any = None,
    email: str | None = None,
    path: str | None = None,
    dedup_key: str | None = None,
) -> Event:
    url, origin = _url_and_origin(context, path)
    body_data = dict(context.url_params)
    body_data["origin"] = origin
    if context.referer:
        body_data["Referer"] = context.referer
    body_data.update(data or {})
    payload = {
        "url": url,
        "customer_site_id": settings.CUSTOMER_SITE_ID,
        "identity_data": _identity_data(context, email),
        "datetime": values.occurred(occurred_at),
        "type": event_type,
        "data": body_data,
    }
    return Event(event_type, payload, dedup_key)


def _product_path(product: Any) -> str | None:
    get_url = getattr(product, "get_absolute_url", None)
    return str(get_url()) if callable(get_url) else None


def build_pageview(context: RequestContext, *, occurred_at: Any = None) -> Event:
    return build(PAGEVIEW, context, occurred_at=occurred_at)


def build_productview(
    context: RequestContext, product: Any = None, *, occurred_at: Any = None
) -> Event:
    return build(PRODUCTVIEW, context, occurred_at=occurred_at, path=_product_path(product))


def build_addtocart(
    context: RequestContext, product: Any = None, quantity: Any = 1, *, occurred_at: Any = None
) -> Event:
    # Tracify's addtocart has no quantity field: it is checked, so that a bad call is reported.
    values.quantity(quantity, "quantity")
    return build(ADDTOCART, context, occurred_at=occurred_at, path=_product_path(product))


def _line_title(title: Any, field: str) -> str:
    if title is None:
        raise TracifyValidationError(field, "is missing")
    # A title of only blanks or control characters is a shop's data quirk, not a reason to
    # lose the purchase.
    try:
        return values.text(title, field)
    except TracifyValidationError:
        return UNTITLED


def purchase_data(order: OrderData) -> dict[str, str]:
    data = {
        "order_id": values.identifier(order.order_id, "order.order_id"),
        "currency": values.currency(order.currency, "order.currency"),
        "amount": values.amount(order.amount, "order.amount"),
    }
    for number, line in enumerate(order.lines, start=1):
        field = f"order.lines[{number - 1}]"
        data[f"ITEM{number}"] = _line_title(line.title, f"{field}.title")
        data[f"AMT{number}"] = values.amount(line.unit_price, f"{field}.unit_price")
        data[f"QTY{number}"] = str(values.quantity(line.quantity, f"{field}.quantity"))
    return data


def build_purchase(context: RequestContext, order: OrderData, *, occurred_at: Any = None) -> Event:
    data = purchase_data(order)
    return build(
        PURCHASE,
        context,
        data,
        occurred_at=occurred_at,
        email=order.email,
        dedup_key=f"purchase:{data['order_id']}",
    )


def build_conversion(
    context: RequestContext,
    conversion_id: Any,
    amount: Any,
    currency: Any,
    *,
    occurred_at: Any = None,
) -> Event:
    data = {
        "conversion_id": values.identifier(conversion_id, "conversion_id"),
        "currency": values.currency(currency),
        "amount": values.amount(amount, "amount"),
    }
    return build(
        CONVERSION,
        context,
        data,
        occurred_at=occurred_at,
        dedup_key=f"conversion:{data['conversion_id']}",
    )


def build_post_purchase_survey(
    context: RequestContext,
    order_id: Any,
    source: Any,
    medium: Any = None,
    *,
    occurred_at: Any = None,
) -> Event:
    data = {
        "order_id": values.identifier(order_id, "order_id"),
        "source": values.text(source, "source"),
    }
    if medium is not None:
        data["medium"] = values.text(medium, "medium")
    return build(
        POSTPURCHASESURVEY,
        context,
        data,
        occurred_at=occurred_at,
        dedup_key=f"postpurchasesurvey:{data['order_id']}",
    )
