"""django-tracify: send a Django shop's customer events to Tracify through an outbox.

import django_tracify as tracify
tracify.track_purchase(order)
await tracify.atrack_purchase(order)  # in async code
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from django_tracify.errors import TracifyError, TracifyValidationError
from django_tracify.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from django_tracify.capture.tracking import (
        acapture_identity,
        atrack_addtocart,
        atrack_conversion,
        atrack_pageview,
        atrack_post_purchase_survey,
        atrack_productview,
        atrack_purchase,
        capture_identity,
        track_addtocart,
        track_conversion,
        track_pageview,
        track_post_purchase_survey,
        track_productview,
        track_purchase,
    )


try:
    __version__ = version("django-tracify")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "TracifyError",
    "TracifyValidationError",
    "__version__",
    "acapture_identity",
    "atrack_addtocart",
    "atrack_conversion",
    "atrack_pageview",
    "atrack_post_purchase_survey",
    "atrack_productview",
    "atrack_purchase",
    "capture_identity",
    "track_addtocart",
    "track_conversion",
    "track_pageview",
    "track_post_purchase_survey",
    "track_productview",
    "track_purchase",
]

# Every public name not defined above comes from tracking.py, imported on first use.
__getattr__ = lazy_exports(
    __name__, {name: "django_tracify.capture.tracking" for name in __all__ if name not in globals()}
)
