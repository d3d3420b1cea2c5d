from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User

from django_tracify.models import OutboxEvent
from django_tracify.routers import OutboxRouter


def test_outbox_models_go_to_the_configured_alias(tracify_settings: Callable[..., None]) -> None:
    router = OutboxRouter()
    assert router.db_for_write(OutboxEvent) == "default"
    tracify_settings(DATABASE="outbox")
    assert router.db_for_read(OutboxEvent) == "outbox"
    assert router.db_for_write(OutboxEvent) == "outbox"
    assert router.db_for_write(User) is None
    assert router.allow_migrate("outbox", "django_tracify") is True
    assert router.allow_migrate("default", "django_tracify") is False
    assert router.allow_migrate("default", "auth") is None
    assert router.allow_relation(OutboxEvent(), User()) is None
