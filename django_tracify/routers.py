"""Puts the outbox tables on TRACIFY['DATABASE'] when one is named."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from django_tracify.conf import settings

APP_LABEL = "django_tracify"


def outbox_database() -> str:
    return settings.DATABASE or "default"


class OutboxRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return outbox_database() if model._meta.app_label == APP_LABEL else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return outbox_database() if model._meta.app_label == APP_LABEL else None

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        return None

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label == APP_LABEL:
            return db == outbox_database()
        return None
