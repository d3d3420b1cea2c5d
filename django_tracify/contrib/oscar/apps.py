from __future__ import annotations

from django.apps import AppConfig


class TracifyOscarConfig(AppConfig):
    name = "django_tracify.contrib.oscar"
    label = "django_tracify_oscar"
    verbose_name = "Tracify for django-oscar"

    def ready(self) -> None:
        # Oscar is imported here, never by the core: shops without Oscar never load it.
        from django_tracify.contrib.oscar import receivers

        receivers.connect()
