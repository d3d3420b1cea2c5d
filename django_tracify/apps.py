from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class TracifyConfig(AppConfig):
    name = "django_tracify"
    label = "django_tracify"
    verbose_name = "Tracify"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_tracify import receivers
        from django_tracify.checks import (
            check_database,
            check_middleware,
            check_outbox_timeouts,
            check_settings,
        )

        checks.register(check_settings, "tracify")
        checks.register(check_middleware, "tracify")
        checks.register(check_outbox_timeouts, "tracify")
        checks.register(check_database, "tracify", checks.Tags.database)
        receivers.connect()
