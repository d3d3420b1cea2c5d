from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_tracify.delivery import flushing
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from django_tracify.outbox import capture_problems
from tests.factories import OutboxRow
from tests.fixed_jitter import Highest
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db


def status_json(*args: str) -> dict[str, Any]:
    out = io.StringIO()
    call_command("tracify_status", "--json", *args, stdout=out, stderr=io.StringIO())
    facts: dict[str, Any] = json.loads(out.getvalue())
    return facts


def test_json_before_any_flush() -> None:
    ids = [row.pk for row in OutboxRow.create_batch(2)]
    OutboxEvent.objects.filter(pk=ids[0]).update(created_at=timezone.now() - timedelta(minutes=10))
    OutboxRow(status=OutboxStatus.DEAD)
    OutboxRow(status=OutboxStatus.INVALID)
    facts = status_json()
    assert facts["pending"] == 2
    assert facts["due"] == 2
    assert (facts["sending"], facts["expired_leases"]) == (0, 0)
    assert (facts["dead"], facts["invalid"], facts["discarded"], facts["sent"]) == (1, 1, 0, 0)
    assert facts["oldest_pending"]["id"] == ids[0]
    created = OutboxEvent.objects.get(pk=ids[0]).created_at
    assert datetime.fromisoformat(facts["oldest_pending"]["created_at"]) == created
    assert datetime.fromisoformat(facts["undelivered_since"]) == created
    assert 600 <= facts["lag_seconds"] < 24 * 3600
    assert facts["last_flush_at"] is None
    assert facts["last_outcome"] is None
    assert facts["last_success_at"] is None
    assert facts["capture_problems"] == {
        "outbox_unwritable": {"count": 0, "last_at": None},
        "no_client_ip": {"count": 0, "last_at": None},
    }
    assert (facts["max_lag"], facts["over_max_lag"]) == (None, False)


def test_json_after_real_flushes(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(BACKOFF_BASE_SECONDS=60)
    OutboxRow.create_batch(3)
    call_command("tracify_flush", stdout=io.StringIO())
    facts = status_json()
    state = FlushState.load()
    assert (facts["pending"], facts["sent"], facts["lag_seconds"]) == (0, 3, 0)
    assert facts["oldest_pending"] is None
    assert facts["undelivered_since"] is None
    assert facts["last_outcome"] == "ok"
    assert facts["last_message"] == "sent 3, retried 0, dead 0, left 0"
    assert state.last_success_at is not None
    assert datetime.fromisoformat(facts["last_success_at"]) == state.last_success_at

    OutboxRow.create_batch(2)
    receiver.script("http_500")
    flushing.flush(rng=Highest())
    facts = status_json()
    assert (facts["pending"], facts["due"], facts["sent"]) == (2, 0, 3)
    assert facts["last_outcome"] == "failing"
    assert facts["last_message"].startswith("sent 0, retried 2, dead 0, left 0")
    assert datetime.fromisoformat(facts["last_success_at"]) == state.last_success_at


def test_json_counts_expired_leases_and_capture_problems() -> None:
    event = OutboxRow()
    OutboxEvent.objects.filter(pk=event.pk).update(
        status=OutboxStatus.SENDING, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    capture_problems.record(capture_problems.NO_CLIENT_IP)
    capture_problems.save("default")
    facts = status_json()
    assert (facts["pending"], facts["sending"], facts["expired_leases"]) == (0, 1, 1)
    assert facts["undelivered_since"] is not None  # a sending row is undelivered too
    assert facts["capture_problems"]["no_client_ip"]["count"] == 1
    assert facts["capture_problems"]["no_client_ip"]["last_at"] is not None


def test_json_keeps_the_max_lag_exit_status() -> None:
    event = OutboxRow()
    OutboxEvent.objects.filter(pk=event.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    facts = status_json("--max-lag", "900")
    assert (facts["max_lag"], facts["over_max_lag"]) == (900, False)

    out = io.StringIO()
    with pytest.raises(CommandError, match="over --max-lag 300s") as info:
        call_command("tracify_status", "--json", "--max-lag", "300", stdout=out)
    assert info.value.returncode == 1
    facts = json.loads(out.getvalue())  # the facts are printed before the exit status
    assert (facts["max_lag"], facts["over_max_lag"]) == (300, True)


def test_status_reads_without_writing() -> None:
    status_json()
    call_command("tracify_status", stdout=io.StringIO())
    assert not FlushState.objects.exists()


def test_the_oldest_pending_event_is_the_one_sent_first_as_in_the_admin(
    admin_client: Any,
) -> None:
    now = timezone.now()
    first = OutboxEvent.objects.create(
        event_type="pageview", payload={}, created_at=now - timedelta(hours=1)
    )
    # Written later by a web server whose clock is behind.
    OutboxEvent.objects.create(
        event_type="pageview", payload={}, created_at=now - timedelta(hours=3)
    )
    facts = status_json()
    assert facts["oldest_pending"]["id"] == first.pk
    assert datetime.fromisoformat(facts["undelivered_since"]) == first.created_at
    html = admin_client.get("/admin/django_tracify/outboxevent/").content.decode()
    assert ">1\xa0hour old" in html
