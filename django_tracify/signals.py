"""Signals a shop sends to have an event recorded, instead of calling track_* itself.

    from django_tracify import signals
    signals.order_placed.send(sender=Order, order=order, request=request)

Every receiver returns the OutboxEvent (or None), so `send()` answers with the row.

| signal | keyword arguments |
|---|---|
| product_viewed | request=None, product=None |
| cart_item_added | request=None, product=None, quantity=1 |
| order_placed | order, request=None, identity=None |
| conversion_completed | conversion_id, amount, currency, request=None, identity=None |

`request=None` means the request made current by TracifyMiddleware; `identity` is a snapshot
from capture_identity() (for calls outside any request, e.g. a payment webhook).

Signals the app sends while delivering, for metrics and alerts; sender is OutboxEvent. Each is
sent after the rows were settled and committed, with send_robust(): a receiver that raises is
logged and never breaks a flush.

| signal | keyword arguments |
|---|---|
| events_sent | event_ids, event_types (Counter: type -> count), using |
| events_retried | event_ids, event_types, using, error, http_status, next_attempt_at |
| events_dead | event_ids, event_types, using, error, http_status |
| flush_finished | result (delivery.FlushResult: sent, retried, dead, left, outcome, ...), using |
"""

from __future__ import annotations

from django.dispatch import Signal

product_viewed = Signal()
cart_item_added = Signal()
order_placed = Signal()
conversion_completed = Signal()

events_sent = Signal()
events_retried = Signal()
events_dead = Signal()
flush_finished = Signal()
