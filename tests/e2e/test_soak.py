"""The soak's short CI variant: 60 s of shop traffic through gunicorn, a receiver answering 20 %
of requests with faults, four flushers with one SIGKILLed every few seconds; on PostgreSQL and
on MariaDB.

The full run is `.venv/bin/python benchmarks/soak.py --minutes 5 [--db mariadb]` (docs/privacy.md:
"The soak").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import REPO_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "db",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
)
def test_nothing_is_lost_under_faults_and_killed_flushers(
    db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    request.getfixturevalue(f"{db}_server")  # started, or skipped (failed under CI) with why
    figures_path = tmp_path / "soak.json"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/soak.py",
            "--seconds",
            "60",
            "--kill-every",
            "3",
            "--json",
            str(figures_path),
            "--db",
            db,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert figures_path.exists(), done.stdout + done.stderr
    figures = json.loads(figures_path.read_text())
    report = done.stdout
    assert figures["recorded_pageviews"] > 0 and figures["recorded_purchases"] > 0, report
    assert figures["kills"] >= 10, report
    assert set(figures["faults"]) >= {"http_500", "http_429", "hang", "reset"}, report
    assert figures["outbox_rows"] == figures["recorded_pageviews"] + figures["recorded_purchases"]
    assert figures["missing_pageviews"] == figures["missing_purchases"] == 0, report
    assert figures["purchases_twice_with_distinct_bodies"] == 0, report
    assert figures["duplicate_deliveries"] <= figures["duplicate_bound"], report
    assert figures["left_sending"] == figures["left_pending"] == 0, report
    assert figures["poison_dead_with_error"] == figures["recorded_poison"], report
    assert figures["other_dead"] == 0, report
    assert figures["failures"] == [] and done.returncode == 0, report
