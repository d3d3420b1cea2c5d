"""When the outbox cannot be written: the shop's transaction and its workers are unharmed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from django.db import connections, transaction

import django_tracify as tracify
from tests.process_fixtures import OutboxDatabase
from tests.services import PostgresServer

ORDER = {"number": "A-1001", "total": "59.90", "currency": "EUR", "email": "jane@example.com"}

TRACKING_CALLS: dict[str, Callable[[Any], object]] = {
    "purchase": lambda request: tracify.track_purchase(ORDER, request=request),
    "conversion": lambda request: tracify.track_conversion("L-1", "10", "EUR", request=request),
    "pageview": lambda request: tracify.track_pageview(request),
    "invalid purchase": lambda request: tracify.track_purchase(
        {**ORDER, "total": "12,50"}, request=request
    ),
}


@pytest.fixture
def migration_lock(
    postgres_server: PostgresServer, postgres_outbox: OutboxDatabase
) -> Iterator[None]:
    """Another connection holds the outbox table's strongest lock, as a migration would."""
    with psycopg.connect(postgres_server.conninfo, dbname=postgres_outbox.alias) as migration:
        migration.execute("LOCK TABLE django_tracify_outboxevent IN ACCESS EXCLUSIVE MODE")
        yield
        migration.rollback()


@pytest.mark.postgres
@pytest.mark.parametrize("timeout", ["lock_timeout", "statement_timeout"])
@pytest.mark.parametrize("call", TRACKING_CALLS)
def test_a_tracking_statement_that_fails_leaves_the_checkout_committable(
    postgres_outbox: OutboxDatabase,
    migration_lock: None,
    shop_request: Callable[..., Any],
    tracify_settings: Callable[..., None],
    timeout: str,
    call: str,
) -> None:
    alias = postgres_outbox.alias
    tracify_settings(DATABASE=alias, RAISE_ERRORS=False)
    shop = connections[alias]
    with shop.cursor() as cursor:
        cursor.execute("CREATE TABLE shop_order (number text PRIMARY KEY, paid boolean)")
    with transaction.atomic(using=alias):
        with shop.cursor() as cursor:
            cursor.execute(f"SET LOCAL {timeout} = '100ms'")
            cursor.execute("INSERT INTO shop_order VALUES ('A-1001', false)")
        assert TRACKING_CALLS[call](shop_request("/checkout/")) is None
        with shop.cursor() as cursor:
            cursor.execute("UPDATE shop_order SET paid = true")
    with shop.cursor() as cursor:
        cursor.execute("SELECT number, paid FROM shop_order")
        assert cursor.fetchall() == [("A-1001", True)]
