"""Filling a benchmark's outbox with due events in one SQL statement, on each database."""

from __future__ import annotations

import json
from typing import Any

TABLE = "django_tracify_outboxevent"


def fill(alias: str, count: int, template: dict[str, Any]) -> None:
    """Empty the outbox, then insert `count` due events in one statement, each its own id."""
    from django.db import connections

    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {TABLE}")
            cursor.execute(
                f"""INSERT INTO {TABLE} (event_type, payload, status, attempts, next_attempt_at,
                    last_error, created_at)
                SELECT 'conversion',
                    jsonb_set(%s::jsonb, '{{data,conversion_id}}', to_jsonb('b-' || g)),
                    'pending', 0, now() - interval '1 minute', '', now()
                FROM generate_series(1, %s) AS g""",
                [json.dumps(template), count],
            )
            cursor.execute(f"ANALYZE {TABLE}")
        elif connection.vendor == "mysql":
            cursor.execute(f"TRUNCATE {TABLE}")
            # MariaDB's Sequence engine: seq_1_to_<n> is a table of the numbers 1..n.
            cursor.execute(
                f"""INSERT INTO {TABLE} (event_type, payload, status, attempts, next_attempt_at,
                    last_error, created_at)
                SELECT 'conversion',
                    JSON_SET(%s, '$.data.conversion_id', CONCAT('b-', seq)),
                    'pending', 0, UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE, '', UTC_TIMESTAMP(6)
                FROM seq_1_to_{int(count)}""",
                [json.dumps(template)],
            )
            cursor.execute(f"ANALYZE TABLE {TABLE}")
            cursor.fetchall()
        else:
            cursor.execute(f"DELETE FROM {TABLE}")
            cursor.execute(
                f"""WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < %s)
                INSERT INTO {TABLE} (event_type, payload, status, attempts, next_attempt_at,
                    last_error, created_at)
                SELECT 'conversion', json_set(%s, '$.data.conversion_id', 'b-' || n),
                    'pending', 0, datetime('now', '-1 minute'), '', datetime('now')
                FROM g""",
                [count, json.dumps(template)],
            )
