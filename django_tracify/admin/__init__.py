"""The outbox in the Django admin: the list with its summary (summary), a paginator that never
counts past a cap (paginator), one event's page, and the retry and discard actions (outbox)."""

from __future__ import annotations

from django_tracify.admin.outbox import OutboxEventAdmin

__all__ = ["OutboxEventAdmin"]
