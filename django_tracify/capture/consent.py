"""Whether the visitor of a request allows tracking.

The browser's refusal comes first and cannot be overridden: Global Privacy Control
(`Sec-GPC: 1`) always, and `DNT: 1` with TRACIFY['RESPECT_DNT']. Otherwise the
TRACIFY['CONSENT'] callable decides (e.g. from a cookie banner's cookie); without one,
tracking is allowed.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest

from django_tracify.conf import settings

logger = logging.getLogger(__name__)


def browser_refuses(request: HttpRequest) -> bool:
    if request.META.get("HTTP_SEC_GPC", "").strip() == "1":
        return True
    return settings.RESPECT_DNT and request.META.get("HTTP_DNT", "").strip() == "1"


def has_consent(request: HttpRequest) -> bool:
    """False when the browser refuses or the CONSENT callable says no (or fails)."""
    try:
        if browser_refuses(request):
            return False
        decide = settings.CONSENT
        return True if decide is None else bool(decide(request))
    except Exception:
        # A broken consent callable must not break the page; not knowing means no consent.
        logger.exception("tracify: the CONSENT callable failed; treating it as no consent")
        return False
