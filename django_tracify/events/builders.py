"""Building the event body Tracify receives, one builder per event type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from django_tracify.conf import settings
from django_tracify.errors import TracifyValidationError
from django_tracify.events import values
from django_tracify.events.context import MAX_URL_LENGTH, RequestContext, cut, without_query
from django_tracify.events.identity import KIND_IP, KIND_USER_AGENT
from django_tracify.events.orders import OrderData

PAGEVIEW = "pageview"
PRODUCTVIEW = "productview"
ADDTOCART = "addtocart"
PURCHASE = "purchase"
CONVERSION = "conversion"
POSTPURCHASESURVEY = "postpurchasesurvey"
UNTITLED = "(untitled)"
PRODUCT_URL = "product.get_absolute_url()"
EVENT_TYPES = (PAGEVIEW, PRODUCTVIEW, ADDTOCART, PURCHASE, CONVERSION, POSTPURCHASESURVEY)
# The event types kept once per id; their dedup key is "<type>:<id>" (dedup_key()).
DEDUPLICATED = (PURCHASE, CONVERSION, POSTPURCHASESURVEY)


def dedup_key(event_type: str, identifier: str) -> str:
    """The outbox's unique key of a deduplicated event, e.g. "purchase:1001"."""
    return f"{event_type}:{identifier}"


@dataclass(frozen=True)
class Event:
    """A validated event body and the key that keeps it unique in the outbox (if any)."""

    event_type: str
    payload: dict[str, Any]
    dedup_key: str | None = None


def _url_and_origin(context: RequestContext, page: str | None) -> tuple[str, str]:
    url = page or context.url or settings.SITE_URL
    if not url:
        raise TracifyValidationError(
            "url",
            context.url_problem
            or "is unknown: pass request=, or identity= from capture_identity(), "
            "or set TRACIFY['SITE_URL']",
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TracifyValidationError("url", f"{url[:60]!r} is not an absolute http(s) URL")
    origin = context.origin or f"{parts.scheme}://{parts.netloc}"
    return cut(url, MAX_URL_LENGTH), origin


def _page_url(context: RequestContext, page: str, field: str) -> str | None:
    """`page` (a path or URL) made absolute on the request's origin, or SITE_URL's."""
    if context.url:
        joined = urljoin(context.url, page)
    elif settings.SITE_URL:
        joined = urljoin(settings.SITE_URL + "/", page.lstrip("/"))
    else:
        return None  # _url_and_origin() says what is missing
    url = without_query(joined)
    if urlsplit(url).scheme not in ("http", "https"):
        raise TracifyValidationError(field, f"{page[:60]!r} is not a path or http(s) URL")
    return url


def product_page(context: RequestContext, product: Any) -> str | None:
    """The product's page: product.get_absolute_url(), made absolute. Tracify's productview
    and addtocart have no product fields; the product is where the event happened."""
    get_url = getattr(product, "get_absolute_url", None)
    if not callable(get_url):
        return None
    try:
        page = get_url()
    except Exception as err:
        raise TracifyValidationError(PRODUCT_URL, f"raised {type(err).__name__}") from err
    return _page_url(context, str(page), PRODUCT_URL) if page else None


def _referring_page(context: RequestContext) -> str | None:
    """The page of this site the request came from: where an add-to-cart button was."""
    referer, origin = context.referer, context.origin
    if referer and origin and (referer == origin or referer.startswith(origin + "/")):
        return referer
    return None


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
    page: str | None = None,
    dedup_key: str | None = None,
) -> Event:
    """The event body; `page` (an absolute URL) stands for the request's URL."""
    url, origin = _url_and_origin(context, page)
    body_data = dict(context.url_params)
    body_data["origin"] = origin
    if context.referer:
        body_data["Referer"] = context.referer
    body_data.update(data or {})
    payload = {
        "url": url,
        "customer_site_id": settings.CUSTOMER_SITE_ID,
        "identity_data": _identity_data(context, email),
        "datetime": _occurred(occurred_at),
        "type": event_type,
        "data": body_data,
    }
    return Event(event_type, payload, dedup_key)


def _occurred(occurred_at: Any) -> str:
    if occurred_at is None:
        return values.occurred(None)
    return values.occurred(occurred_at, max_age_seconds=settings.MAX_AGE_SECONDS)


def build_pageview(context: RequestContext, *, occurred_at: Any = None) -> Event:
    return build(PAGEVIEW, context, occurred_at=occurred_at)


def build_productview(
    context: RequestContext, product: Any = None, *, occurred_at: Any = None
) -> Event:
    return build(PRODUCTVIEW, context, occurred_at=occurred_at, page=product_page(context, product))


def build_addtocart(
    context: RequestContext, product: Any = None, quantity: Any = 1, *, occurred_at: Any = None
) -> Event:
    # Tracify's addtocart has no quantity field: it is checked, so that a bad call is reported.
    values.quantity(quantity, "quantity")
    # The request is the cart's POST endpoint: the event happened on the product's page.
    page = product_page(context, product) or _referring_page(context)
    return build(ADDTOCART, context, occurred_at=occurred_at, page=page)


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
        dedup_key=dedup_key(PURCHASE, data["order_id"]),
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
        dedup_key=dedup_key(CONVERSION, data["conversion_id"]),
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
        dedup_key=dedup_key(POSTPURCHASESURVEY, data["order_id"]),
    )
