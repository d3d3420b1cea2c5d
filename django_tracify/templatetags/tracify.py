"""{% load tracify %}: record productview, addtocart and purchase events while a page renders.

The tags render nothing. The event is built from the template context's `request` (the
`django.template.context_processors.request` context processor), else from the request made
current by TracifyMiddleware. In production (RAISE_ERRORS off) a failure is logged, never
raised into the template. Rendered in an async view's event loop, a tag's event is written
when the view returns (django_tracify.capture.event_loop).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from django_tracify.capture.tracking import track_addtocart, track_productview, track_purchase

register = template.Library()


def context_request(context: template.Context) -> HttpRequest | None:
    request = context.get("request")
    return request if isinstance(request, HttpRequest) else None


@register.simple_tag(takes_context=True)
def tracify_productview(context: template.Context, product: Any = None) -> str:
    """{% tracify_productview product %}"""
    track_productview(context_request(context), product=product)
    return ""


@register.simple_tag(takes_context=True)
def tracify_addtocart(context: template.Context, product: Any = None, quantity: Any = 1) -> str:
    """{% tracify_addtocart product quantity %}"""
    track_addtocart(context_request(context), product=product, quantity=quantity)
    return ""


@register.simple_tag(takes_context=True)
def tracify_purchase(context: template.Context, order: Any) -> str:
    """{% tracify_purchase order %}: one purchase per order, however often the page reloads."""
    track_purchase(order, request=context_request(context))
    return ""
