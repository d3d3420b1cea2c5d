"""Async views that track events: the URLconf of tests/capture/test_event_loop.py and of the uvicorn
site of tests/capture/test_asgi.py (tests/asgi_settings.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template import engines
from django.urls import path

import django_tracify as tracify

PAGE = "<!doctype html><title>shop</title><p>Hello</p>"
PRODUCT = SimpleNamespace(title="Mug", get_absolute_url=lambda: "/catalogue/mug_1/")
API_ORDER = {"number": "API-1", "total": "19.90", "currency": "EUR"}
WEBHOOK_ORDER = {"number": "HOOK-1", "total": "5.00", "currency": "EUR"}
TAG_ORDER = {
    "number": "TAG-1",
    "total": "24.80",
    "currency": "EUR",
    "lines": [{"title": "Mug", "quantity": 2, "price": "12.40"}],
}
# What a product, cart and thank-you page of a shop put in their templates.
TAGS_TEMPLATE = """{% load tracify %}<!doctype html><title>shop</title>
<h1>{{ product.title }}</h1>
{% tracify_productview product %}{% tracify_addtocart product quantity %}
{% tracify_purchase order %}"""


async def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


async def api_calls(request: HttpRequest) -> JsonResponse:
    """Every async twin; without request= they use the context TracifyMiddleware made current."""
    rows = {
        "pageview": await tracify.atrack_pageview(request),
        "productview": await tracify.atrack_productview(request, product=PRODUCT),
        "addtocart": await tracify.atrack_addtocart(product=PRODUCT, quantity=2),
        "purchase": await tracify.atrack_purchase(API_ORDER),
        "conversion": await tracify.atrack_conversion("lead-7", "0", "EUR", request=request),
        "postpurchasesurvey": await tracify.atrack_post_purchase_survey(
            "API-1", "instagram", "story", request=request
        ),
    }
    snapshot = await tracify.acapture_identity(request)
    rows["webhook"] = await tracify.atrack_purchase(WEBHOOK_ORDER, identity=snapshot)
    return JsonResponse({name: row.pk if row else None for name, row in rows.items()})


def render_tags(request: HttpRequest, **context: Any) -> HttpResponse:
    # In the event loop's thread, as django.shortcuts.render() in an async view.
    template = engines["django"].from_string(TAGS_TEMPLATE)
    return HttpResponse(template.render(context, request))


async def tags(request: HttpRequest) -> HttpResponse:
    return render_tags(request, product=PRODUCT, quantity=2, order=TAG_ORDER)


async def bad_tags(request: HttpRequest) -> HttpResponse:
    """A quantity of 0 between two good tags."""
    return render_tags(request, product=PRODUCT, quantity=0, order=TAG_ORDER)


async def sync_calls(request: HttpRequest) -> HttpResponse:
    """The sync API called straight from an async view, as a shop might by mistake."""
    row = tracify.track_conversion("lead-9", "0", "EUR")
    snapshot = tracify.capture_identity(request)
    return HttpResponse(f"{PAGE}<p>{row is None} {sorted(snapshot or {})}</p>")


async def landing(request: HttpRequest) -> HttpResponseRedirect:
    """A redirect that records an event: the event carries the landing URL parameters."""
    tracify.track_productview(product=PRODUCT)
    return HttpResponseRedirect("/page/")


urlpatterns = [
    path("page/", page),
    path("api/", api_calls),
    path("tags/", tags),
    path("bad-tags/", bad_tags),
    path("sync-calls/", sync_calls),
    path("landing/", landing),
]
