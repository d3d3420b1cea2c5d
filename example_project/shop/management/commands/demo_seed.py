"""Demo products and the demo staff user admin/admin. Safe to run again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand

from shop.models import Product

PRODUCTS = [
    ("Linen shirt", "linen-shirt", "29.90", "#c9b79c", "Breathable, washed linen in sand."),
    ("Trail socks", "trail-socks", "12.50", "#6b8f71", "Merino blend, three pairs."),
    ("Canvas tote", "canvas-tote", "18.00", "#d08c60", "Heavy canvas, inner pocket."),
    ("Rain jacket", "rain-jacket", "89.00", "#4a6fa5", "Taped seams, packs into its hood."),
    ("Wool beanie", "wool-beanie", "22.00", "#9a6d8f", "Ribbed lambswool, one size."),
    ("Water bottle", "water-bottle", "15.95", "#5aa0a8", "Steel, keeps cold for 24 hours."),
]

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"
# A staff user, not a superuser: it sees what these permissions allow, like a shop's operator.
DEMO_PERMISSIONS = [
    ("django_tracify", "view_outboxevent"),
    ("django_tracify", "operate_outboxevent"),
    ("shop", "view_order"),
    ("shop", "view_product"),
    ("shop", "change_product"),
]


class Command(BaseCommand):
    help = "Create the demo products and the demo staff user admin/admin."

    def handle(self, *args: Any, **options: Any) -> None:
        for name, slug, price, colour, description in PRODUCTS:
            Product.objects.update_or_create(
                slug=slug,
                defaults={
                    "name": name,
                    "price": Decimal(price),
                    "colour": colour,
                    "description": description,
                },
            )
        user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = True
        user.email = "admin@example.com"
        user.set_password(DEMO_PASSWORD)
        user.save()
        for app_label, codename in DEMO_PERMISSIONS:
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        self.stdout.write(
            f"{len(PRODUCTS)} products; staff user {DEMO_USERNAME!r} "
            f"(password {DEMO_PASSWORD!r}) may operate the Tracify outbox."
        )
