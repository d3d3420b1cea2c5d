"""The outbox rows; this package is the only code that changes them.

enqueueing: new rows, one INSERT each. claiming: taking due rows for one flusher. states:
settle, requeue, retry, discard and retention of the rows already there.
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
