"""What is MariaDB's (and MySQL's) own: the checks on such an outbox, claims without SKIP
LOCKED, the insert without RETURNING. Claims and flushes shared with PostgreSQL are in
test_claiming.py and test_flush_concurrent.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core import checks
from django.db import connections
from django.utils import timezone

from django_tracify import outbox
from django_tracify.checks import check_database
from django_tracify.events.builders import Event
from django_tracify.models import OutboxEvent, OutboxStatus
from tests.process_fixtures import OutboxDatabase

pytestmark = pytest.mark.mariadb


@pytest.fixture
def mariadb(mariadb_outbox: OutboxDatabase, tracify_settings: Callable[..., None]) -> Any:
    """The outbox on the MariaDB server; its connection, whose features a test may fake."""
    tracify_settings(DATABASE=mariadb_outbox.alias)
    return connections[mariadb_outbox.alias]


def test_a_mariadb_outbox_passes_every_check(
    mariadb_outbox: OutboxDatabase,
    tracify_settings: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What `migrate` runs for the database it migrates: the app's checks and the models'.
    tracify_settings(DATABASE=mariadb_outbox.alias, FLUSHERS=4)
    options = connections[mariadb_outbox.alias].settings_dict["OPTIONS"]
    ours = [m.id for m in checks.run_checks(databases=[mariadb_outbox.alias]) if is_ours(m)]
    assert ours == ["tracify.W005"]  # an outbox database of its own, without timeouts

    # With the timeouts docs/scaling.md gives for MySQL/MariaDB, nothing is left to report.
    timeouts = {"connect_timeout": 3, "read_timeout": 3, "write_timeout": 3}
    monkeypatch.setitem(
        connections[mariadb_outbox.alias].settings_dict, "OPTIONS", {**options, **timeouts}
    )
    ours = [m.id for m in checks.run_checks(databases=[mariadb_outbox.alias]) if is_ours(m)]
    assert ours == []


def is_ours(message: checks.CheckMessage) -> bool:
    return (message.id or "").startswith(("tracify.", "models."))


def test_mariadb_before_10_6_is_warned_about_and_its_flushers_wait_in_turn(
    mariadb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mariadb.features, "has_select_for_update_skip_locked", False)
    monkeypatch.setattr(mariadb, "mysql_version", (10, 5, 27))
    found = check_database()
    assert [m.id for m in found] == ["tracify.W006"]
    assert "MariaDB 10.5.27" in found[0].msg

    ids = [outbox.enqueue(Event("pageview", {"n": n})).id for n in range(3)]
    claim = outbox.claim_batch(2, now=timezone.now(), lease_seconds=60)
    assert claim is not None
    assert [row.id for row in claim.rows] == ids[:2]


def test_a_backend_without_row_locks_is_refused(
    mariadb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mariadb.features, "has_select_for_update", False)
    assert [m.id for m in check_database()] == ["tracify.E007"]


def test_without_returning_the_new_row_is_read_by_its_id(
    mariadb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # MySQL has no INSERT ... RETURNING (MariaDB has, since 10.5): the id is the cursor's.
    monkeypatch.setattr(mariadb.features, "can_return_columns_from_insert", False)
    outbox.enqueue(Event("pageview", {"n": "first"}))
    payload = {"type": "purchase", "data": {"ORDERID": "A-1", "note": "ünïcode 'quoted'"}}
    stored, created = outbox.store(Event("purchase", payload, "purchase:A-1"))
    again, created_again = outbox.store(Event("purchase", payload, "purchase:A-1"))
    assert (created, created_again) == (True, False)
    fresh = OutboxEvent.objects.using(mariadb.alias).get(dedup_key="purchase:A-1")
    assert stored.id == again.id == fresh.id
    assert (fresh.payload, fresh.status) == (payload, OutboxStatus.PENDING)
    claim = outbox.claim_batch(10, now=timezone.now(), lease_seconds=60)
    assert claim is not None
    # The payload is sent as stored: JSON text that reads back as what was tracked.
    assert [json.loads(row.payload_json) for row in claim.rows] == [{"n": "first"}, payload]


def tables_in(plan: object) -> list[dict[str, object]]:
    """The table accesses of a MariaDB JSON plan, however deeply nested (filesort, ...)."""
    if isinstance(plan, dict):
        found = [plan["table"]] if isinstance(plan.get("table"), dict) else []
        return found + [
            t for key, value in plan.items() if key != "table" for t in tables_in(value)
        ]
    if isinstance(plan, list):
        return [t for value in plan for t in tables_in(value)]
    return []


@pytest.mark.parametrize("term", ["purchase:1001", "1001"])
def test_the_admin_search_is_answered_from_the_dedup_key_index(
    mariadb: Any, rf: pytest.FixtureRequest, term: str
) -> None:
    """LIKE BINARY (Django's startswith on MySQL) cannot use the index: a table scan."""
    from django.contrib.admin.sites import site

    for n in range(200):
        outbox.enqueue(Event("purchase", {"n": n}, dedup_key=f"purchase:{n}"))
    with mariadb.cursor() as cursor:
        cursor.execute("ANALYZE TABLE django_tracify_outboxevent")
    model_admin = site._registry[OutboxEvent]
    queryset = OutboxEvent.objects.using(mariadb.alias).all()
    found, _ = model_admin.get_search_results(rf.get("/"), queryset, term)

    plan = json.loads(found.explain(format="json"))
    plan = json.loads(plan) if isinstance(plan, str) else plan
    (table,) = tables_in(plan)
    # "index" on PRIMARY (or "ALL") reads every row; a range on dedup_key reads the matches.
    assert table["access_type"] in {"range", "index_merge", "ref", "const"}, table
    assert "dedup_key" in json.dumps(table.get("key") or table.get("index_merge"))
