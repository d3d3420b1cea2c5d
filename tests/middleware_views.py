"""Views and URLs for the middleware tests: sync and async pages, and what must not count."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path

import django_tracify as tracify

PAGE = "<!doctype html><title>shop</title><p>Hello</p>"
ORDER = {"number": "M-1", "total": "19.90", "currency": "EUR", "email": "buyer@example.com"}


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


async def async_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE)


def account_page(request: HttpRequest) -> HttpResponse:
    """A page that greets a logged-in visitor, as a shop's header does."""
    greeting = "Hi" if request.user.is_authenticated else "Log in"
    return HttpResponse(f"{PAGE}<p>{greeting}</p>")


def product_page(request: HttpRequest) -> HttpResponse:
    tracify.track_productview(product=None)
    return HttpResponse(PAGE)


def page_that_tracks_its_pageview(request: HttpRequest) -> HttpResponse:
    first = tracify.track_pageview(request)
    again = tracify.track_pageview()
    return HttpResponse(f"{PAGE}<p>{first and first.pk} {again and again.pk}</p>")


async def async_page_that_tracks_its_pageview(request: HttpRequest) -> HttpResponse:
    return await sync_to_async(page_that_tracks_its_pageview)(request)


def json_page(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"html": PAGE})


def streamed_page(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([PAGE]), content_type="text/html")


def missing_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(PAGE, status=404)


def landing_redirect(request: HttpRequest) -> HttpResponseRedirect:
    return HttpResponseRedirect("/page/")


def thanks(request: HttpRequest) -> HttpResponse:
    tracify.track_purchase(ORDER)
    return HttpResponse(PAGE)


async def async_thanks(request: HttpRequest) -> HttpResponse:
    await sync_to_async(tracify.track_purchase)(ORDER)
    return HttpResponse(PAGE)


def purchase_json(request: HttpRequest) -> JsonResponse:
    tracify.track_purchase(ORDER)
    return JsonResponse({"ok": True})


urlpatterns = [
    path("page/", page),
    path("account/", account_page),
    path("product/", product_page),
    path("async-page/", async_page),
    path("json/", json_page),
    path("tracked/", page_that_tracks_its_pageview),
    path("async-tracked/", async_page_that_tracks_its_pageview),
    path("streamed/", streamed_page),
    path("missing/", missing_page),
    path("go/", landing_redirect),
    path("thanks/", thanks),
    path("async-thanks/", async_thanks),
    path("purchase.json", purchase_json),
    path("admin/page/", page),
    path("healthy-food/", page),
]
