"""The outbox rows; this package is the only code that changes them.

In a row's life: enqueueing writes it (one INSERT each, in the caller's transaction), unless
the outbox database just failed and tracking pauses (pause), the lost events counted by kind
(capture_problems); claiming takes due rows for one flusher; states settles, requeues,
retries, discards and expires the rows already there.
"""

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
