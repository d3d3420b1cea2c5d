"""The shop the soak's load generator visits (served by gunicorn): pages and purchases.

GET /p/<marker>/ is an HTML page (a pageview through TracifyMiddleware); GET
/buy/<order_id>/ records tracify.track_purchase(order) and is a page too. An order id ending
in "-poison" puts the receiver's poison marker into the order's line title (only there: the
page's own pageview stays good).
"""

from __future__ import annotations

from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path

import django_tracify as tracify

POISON_MARKER = "SOAK-POISON-MARKER"
PAGE = "<!doctype html><html lang=en><title>Shop</title><p>A product you will like.</p></html>"


def page(request: HttpRequest, marker: str) -> HttpResponse:
    return HttpResponse(PAGE)


def buy(request: HttpRequest, order_id: str) -> HttpResponse:
    title = f"Soak tee {POISON_MARKER}" if order_id.endswith("-poison") else "Soak tee"
    order = {
        "number": order_id,
        "total": "24.90",
        "currency": "EUR",
        "email": f"{order_id}@soak.example",
        "lines": [{"title": title, "quantity": 2, "price": "12.45"}],
    }
    tracify.track_purchase(order)
    return HttpResponse(PAGE)


urlpatterns = [
    path("p/<str:marker>/", page),
    path("buy/<str:order_id>/", buy),
]

application = get_wsgi_application()
