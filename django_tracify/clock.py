"""The outbox's clock: UTC whatever USE_TZ says.

With USE_TZ=False, Django's timezone.now() is naive local time, which repeats an hour at the
autumn clock change and skips one in spring: a retry due in the repeated hour would wait an
hour. The outbox stores and compares naive UTC then (aware UTC with USE_TZ=True).
"""

from __future__ import annotations

from datetime import datetime, timezone

from django.conf import settings


def utc_now() -> datetime:
    now = datetime.now(timezone.utc)
    return now if settings.USE_TZ else now.replace(tzinfo=None)


def as_utc(moment: datetime) -> datetime:
    """An outbox time as an aware UTC datetime (naive ones are UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_utc(moment: datetime) -> str:
    return f"{as_utc(moment):%Y-%m-%d %H:%M:%S} UTC"
