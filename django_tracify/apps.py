from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


class TracifyConfig(AppConfig):
    name = "django_tracify"
    label = "django_tracify"
    verbose_name = "Tracify"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_tracify.capture import receivers
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
        if prometheus_wanted():
            from django_tracify.delivery import metrics

            metrics.install()


def prometheus_wanted() -> bool:
    """TRACIFY['PROMETHEUS'] on and prometheus-client installed (else check tracify.E011)."""
    from django_tracify.checks import prometheus_installed
    from django_tracify.conf import settings

    try:
        wanted = settings.PROMETHEUS
    except ImproperlyConfigured:
        return False  # the checks say what is wrong
    return wanted and prometheus_installed()
