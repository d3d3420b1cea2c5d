"""The outbox rows; this package is the only code that changes them.

In a row's life: enqueueing writes it (one INSERT each, in the caller's transaction), unless
the outbox database just failed and tracking pauses (pause), the lost events counted by kind
(capture_problems); claiming takes due rows for one flusher; states settles, requeues,
retries, discards and expires the rows already there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django_tracify.lazy_exports import lazy_exports

# Imported on first use: settings may import outbox.pause before Django's apps are ready,
# and the modules below import the models.
if TYPE_CHECKING:
    from django_tracify.outbox.claiming import claim_batch
    from django_tracify.outbox.enqueueing import add, enqueue, record_invalid, store
    from django_tracify.outbox.states import (
        DISCARDABLE,
        GIVEN_UP,
        RETRYABLE,
        Claim,
        ClaimedRow,
        count_due,
        delete_expired,
        discard,
        due,
        iter_due,
        mark_dead,
        mark_retry,
        mark_sent,
        release,
        requeue_expired,
        retry_now,
    )

__all__ = [
    "DISCARDABLE",
    "GIVEN_UP",
    "RETRYABLE",
    "Claim",
    "ClaimedRow",
    "add",
    "claim_batch",
    "count_due",
    "delete_expired",
    "discard",
    "due",
    "enqueue",
    "iter_due",
    "mark_dead",
    "mark_retry",
    "mark_sent",
    "record_invalid",
    "release",
    "requeue_expired",
    "retry_now",
    "store",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "claim_batch": "django_tracify.outbox.claiming",
        "add": "django_tracify.outbox.enqueueing",
        "enqueue": "django_tracify.outbox.enqueueing",
        "record_invalid": "django_tracify.outbox.enqueueing",
        "store": "django_tracify.outbox.enqueueing",
        "DISCARDABLE": "django_tracify.outbox.states",
        "GIVEN_UP": "django_tracify.outbox.states",
        "RETRYABLE": "django_tracify.outbox.states",
        "Claim": "django_tracify.outbox.states",
        "ClaimedRow": "django_tracify.outbox.states",
        "count_due": "django_tracify.outbox.states",
        "delete_expired": "django_tracify.outbox.states",
        "discard": "django_tracify.outbox.states",
        "due": "django_tracify.outbox.states",
        "iter_due": "django_tracify.outbox.states",
        "mark_dead": "django_tracify.outbox.states",
        "mark_retry": "django_tracify.outbox.states",
        "mark_sent": "django_tracify.outbox.states",
        "release": "django_tracify.outbox.states",
        "requeue_expired": "django_tracify.outbox.states",
        "retry_now": "django_tracify.outbox.states",
    },
)
