"""Views and URLs for the cache tests: a page for the per-site cache, a `cache_page` view, and a
template that caches a fragment around the tracify tags. Each page says how often it was
rendered, so a test can tell a cached copy from a fresh one."""

from __future__ import annotations

import itertools

from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import path
from django.views.decorators.cache import cache_page

PRODUCT = {"title": "Blue mug", "url": "/mugs/blue/"}
renders = itertools.count(1)

FRAGMENT_TEMPLATE = """{% load cache tracify %}<!doctype html><title>shop</title>
{% cache 60 product_box %}<p>render {{ render }}</p>{% tracify_productview product %}{% endcache %}
{% tracify_addtocart product 1 %}"""


def page(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"<!doctype html><title>shop</title><p>render {next(renders)}</p>")


@cache_page(60)
def cached_view(request: HttpRequest) -> HttpResponse:
    return page(request)


def fragment(request: HttpRequest) -> HttpResponse:
    template = engines["django"].from_string(FRAGMENT_TEMPLATE)
    context = {"product": PRODUCT, "render": next(renders)}
    return HttpResponse(template.render(context, request))


urlpatterns = [
    path("page/", page),
    path("cached-view/", cached_view),
    path("fragment/", fragment),
]
