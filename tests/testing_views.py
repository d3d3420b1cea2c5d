"""A checkout view as a shop writes one, for test_testing.py's TestCase (its ROOT_URLCONF)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path
from django.views.decorators.http import require_POST

import django_tracify as tracify


@require_POST
def checkout(request: HttpRequest) -> HttpResponse:
    with transaction.atomic():
        order = {"number": "T-1", "total": "25.00", "currency": "EUR"}
        tracify.track_purchase(order, request=request)
    return HttpResponseRedirect("/thanks/")


urlpatterns = [path("tracify-testing/checkout/", checkout)]
