"""Outbox rows for tests: one factory, whose defaults are a pending pageview Tracify accepts.

``OutboxRow(status=..., attempts=...)`` stores a row (``using=`` another database alias);
``OutboxRow.build(...)`` makes one unsaved, e.g. for ``bulk_create``. The body is built by the
app's own builder from ``identity``, ``page``, ``data`` and ``email``; a test that needs a body
of its own (a size, a marker) passes ``payload=``; ``rejected=True`` makes one Tracify
rejects.
"""

from __future__ import annotations

from typing import Any

import factory
from django.db import DEFAULT_DB_ALIAS
from factory.django import DjangoModelFactory

from django_tracify.events import builders
from django_tracify.events.context import RequestContext
from django_tracify.events.identity import Identity
from django_tracify.models import OutboxEvent
from tests.conftest import BROWSER_UA

SHOP = "https://shop.example.com"
VISITOR = Identity.from_raw(ip="203.0.113.7", user_agent=BROWSER_UA)


def event_body(
    event_type: str,
    *,
    identity: Identity = VISITOR,
    page: str = f"{SHOP}/",
    data: dict[str, str] | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    context = RequestContext(identity=identity, url=page, origin=SHOP)
    return builders.build(event_type, context, data, email=email).payload


class OutboxRow(DjangoModelFactory):
    class Meta:
        model = OutboxEvent

    class Params:
        identity = VISITOR
        page = f"{SHOP}/"
        data = None
        email = None
        # A body Tracify rejects: no url, no identity.
        rejected = factory.Trait(
            event_type=builders.PURCHASE,
            payload=factory.LazyFunction(lambda: {"type": builders.PURCHASE, "data": {}}),
        )

    event_type = builders.PAGEVIEW
    payload = factory.LazyAttribute(
        lambda row: event_body(
            row.event_type, identity=row.identity, page=row.page, data=row.data, email=row.email
        )
    )

    @classmethod
    def _create(
        cls,
        model_class: type[OutboxEvent],
        *args: Any,
        using: str = DEFAULT_DB_ALIAS,
        **fields: Any,
    ) -> OutboxEvent:
        return model_class.objects.using(using).create(*args, **fields)


def shop_events() -> list[OutboxEvent]:
    """Two pageviews and an addtocart, pending, in id order."""
    return [OutboxRow(), OutboxRow(event_type=builders.ADDTOCART), OutboxRow()]
