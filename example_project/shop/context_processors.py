from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from shop.cart import Cart


def shop(request: HttpRequest) -> dict[str, Any]:
    return {
        "cart_count": len(Cart(request)) if hasattr(request, "session") else 0,
        "receiver_url": settings.RECEIVER_URL,
    }
