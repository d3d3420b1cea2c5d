from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from django_tracify.delivery import flushing
from django_tracify.management.commands import tracify_flush
from django_tracify.models import FlushState, OutboxEvent, OutboxStatus
from tests.factories import OutboxRow
from tests.fixed_jitter import Highest
from tests.services.common import REPO_ROOT
from tracify_receiver import Receiver

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def statuses() -> list[str]:
    return list(OutboxEvent.objects.order_by("id").values_list("status", flat=True))


# --- tracify_flush ----------------------------------------------------------------------------


def test_one_pass_delivers_and_prints_a_summary(receiver: Receiver) -> None:
    OutboxRow.create_batch(3)
    output = run("tracify_flush")
    assert "sent 3, retried 0, dead 0, left 0" in output
    assert statuses() == ["sent"] * 3
    assert len(receiver.accepted_events()) == 3


def test_batch_size_and_limit_options(receiver: Receiver) -> None:
    OutboxRow.create_batch(5)
    output = run("tracify_flush", "--batch-size", "2", "--limit", "3")
    assert "sent 3, retried 0, dead 0, left 2" in output
    assert [len(r.events or []) for r in receiver.requests()] == [2, 1]


def test_bad_numbers_are_refused(receiver: Receiver) -> None:
    with pytest.raises(CommandError, match="--batch-size: '0' is not a whole number"):
        run("tracify_flush", "--batch-size", "0")


def test_verbosity_0_prints_nothing(receiver: Receiver) -> None:
    OutboxRow()
    assert run("tracify_flush", "--verbosity", "0") == ""
    assert statuses() == ["sent"]


def test_an_idle_pass_prints_the_counts_when_verbose(receiver: Receiver) -> None:
    assert "sent 0, retried 0, dead 0, left 0" in run("tracify_flush", "--verbosity", "2")


def test_dry_run_v2_prints_the_requests_and_changes_nothing(receiver: Receiver) -> None:
    events = OutboxRow.create_batch(3)
    output = run("tracify_flush", "--dry-run", "--batch-size", "2", "--verbosity", "2")
    lines = output.splitlines()
    assert lines[0].startswith("request 1: 2 events, ") and f"#{events[0].pk}" in lines[0]
    assert json.loads(lines[1]) == {"events": [events[0].payload, events[1].payload]}
    assert lines[-2].startswith("dry run: would send 3 events in 2 requests (")
    assert lines[-1] == "  by type: pageview 3"
    assert receiver.requests() == []
    assert statuses() == ["pending"] * 3
    assert not FlushState.objects.exists()


def test_unauthorised_exits_non_zero_and_keeps_the_events(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(API_KEY="not-the-right-key")
    OutboxRow.create_batch(2)
    with pytest.raises(CommandError, match=r"TRACIFY\['API_KEY'\]") as info:
        run("tracify_flush")
    assert info.value.returncode == tracify_flush.EXIT_UNAUTHORISED
    assert statuses() == ["pending"] * 2
    assert set(OutboxEvent.objects.values_list("attempts", flat=True)) == {0}


def test_an_unreachable_endpoint_exits_non_zero(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(ENDPOINT=f"http://127.0.0.1:{free_port()}/api/v1/events")
    OutboxRow.create_batch(2)
    with pytest.raises(CommandError, match="unreachable") as info:
        run("tracify_flush")
    assert info.value.returncode == tracify_flush.EXIT_UNREACHABLE
    assert statuses() == ["pending"] * 2
    assert FlushState.load().last_outcome == FlushState.UNREACHABLE


def test_a_server_error_is_not_unreachable(receiver: Receiver) -> None:
    receiver.script("http_500")
    OutboxRow()
    assert "sent 0, retried 1, dead 0" in run("tracify_flush")  # exit status 0


def test_loop_finishes_the_batch_in_flight_on_sigterm(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(BATCH_SIZE=2)
    OutboxRow.create_batch(6)
    # The signal arrives while the first request is being answered.
    receiver.log = lambda line: os.kill(os.getpid(), signal.SIGTERM)
    before = signal.getsignal(signal.SIGTERM)
    output = run("tracify_flush", "--loop", "--interval", "0")
    assert statuses() == ["sent", "sent"] + ["pending"] * 4
    assert "sent 2, retried 0, dead 0, left 4" in output
    assert signal.getsignal(signal.SIGTERM) is before


def test_loop_survives_a_failing_pass(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    OutboxRow()
    real_flush = tracify_flush.flushing.flush
    calls: list[int] = []

    def flaky_flush(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        result = real_flush(**kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(tracify_flush.flushing, "flush", flaky_flush)
    run("tracify_flush", "--loop", "--interval", "0")
    assert len(calls) == 2
    assert "flush pass failed" in caplog.text
    assert statuses() == ["sent"]


def test_a_progress_line_on_a_terminal_with_a_large_backlog(
    receiver: Receiver,
    receiver_settings: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tracify_flush, "PROGRESS_MIN_BACKLOG", 3)
    receiver_settings(BATCH_SIZE=2)
    OutboxRow.create_batch(4)
    output = run("tracify_flush", stdout=Terminal())
    assert "\r         2 / 4 (50%) sent 2" in output
    assert "\r         4 / 4 (100%) sent 4" in output
    assert "\r" not in run("tracify_flush")  # not a terminal: no progress line


# --- tracify_status ---------------------------------------------------------------------------


def test_status_shows_backlog_dead_and_the_last_flush(receiver: Receiver) -> None:
    OutboxRow.create_batch(2)
    OutboxRow(status=OutboxStatus.DEAD)
    output = run("tracify_status")
    assert "pending:        2 (2 due now)" in output
    assert "dead:           1" in output
    assert "last flush:     never" in output
    run("tracify_flush")
    output = run("tracify_status")
    assert "pending:        0 (0 due now)" in output
    assert "oldest pending: none" in output
    assert "last outcome:   ok: sent 2, retried 0, dead 0, left 0" in output
    assert "last success:   never" not in output


def test_status_max_lag_is_a_health_check() -> None:
    event = OutboxRow()
    OutboxEvent.objects.filter(pk=event.pk).update(
        created_at=timezone.now() - timedelta(minutes=10)
    )
    assert "lag:            10m 0" in run("tracify_status", "--max-lag", "900")
    with pytest.raises(CommandError, match="over --max-lag 300s") as info:
        run("tracify_status", "--max-lag", "300")
    assert info.value.returncode == 1


def test_status_sees_an_outage_between_retries(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(BATCH_SIZE=300, BACKOFF_BASE_SECONDS=60)
    OutboxRow.create_batch(300)
    receiver.script("http_500")
    assert flushing.flush(rng=Highest()).retried == 300
    # Tracify has been down for 90 s; passes in between find nothing due and send nothing.
    OutboxEvent.objects.update(created_at=timezone.now() - timedelta(seconds=90))
    run("tracify_flush")
    assert len(receiver.requests()) == 1

    with pytest.raises(CommandError, match="over --max-lag 60s"):
        run("tracify_status", "--max-lag", "60")
    output = run("tracify_status")
    assert "lag:            1m 3" in output
    assert "last outcome:   failing: " in output
    assert "300 events wait for a retry" in output
    assert "HTTP 500" in output
    assert FlushState.load().last_outcome == FlushState.FAILING

    OutboxEvent.objects.update(next_attempt_at=timezone.now())
    run("tracify_flush")  # Tracify is back
    assert "last outcome:   ok: sent 300" in run("tracify_status", "--max-lag", "60")


def test_dry_run_shows_an_oversize_event_as_dead_unsent(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(MAX_BODY_BYTES=1024)
    OutboxRow()
    huge = OutboxRow(payload={"pad": "x" * 2000})
    output = run("tracify_flush", "--dry-run", "--verbosity", "2")
    assert f"event #{huge.pk}: 2,0" in output and "bytes alone" in output
    assert "would be marked dead, not sent" in output
    assert "request 1: 1 events," in output and f"#{huge.pk})" not in output
    assert output.splitlines()[-1].startswith("  would mark 1 dead unsent, each alone over")


# --- tracify_flush: what an operator sees -----------------------------------------------------


def test_an_empty_outbox_says_so(receiver: Receiver) -> None:
    assert "nothing to send: the outbox has no due events" in run("tracify_flush")
    assert run("tracify_flush", "--verbosity", "0") == ""


def test_loop_says_what_it_does_and_never_the_key(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes: list[int] = []

    def one_pass(**kwargs: Any) -> flushing.FlushResult:
        passes.append(1)
        if len(passes) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return flushing.FlushResult()

    monkeypatch.setattr(flushing, "flush", one_pass)
    output = run("tracify_flush", "--loop", "--interval", "0.01")
    first = output.splitlines()[0]
    assert first.startswith("flushing every 0.01 s from database 'default' to 127.0.0.1:")
    assert settings.TRACIFY["API_KEY"] not in output
    # The quiet spell is announced once, not every pass.
    assert output.count("nothing to send") == 1


def test_dry_run_prints_a_summary_and_bodies_only_with_v2(
    receiver: Receiver, receiver_settings: Callable[..., None]
) -> None:
    receiver_settings(MAX_BODY_BYTES=1024)
    events = OutboxRow.create_batch(3)
    huge = OutboxRow(event_type="purchase", payload={"pad": "x" * 2000})
    output = run("tracify_flush", "--dry-run", "--batch-size", "2")
    assert events[0].payload["url"] not in output  # no bodies
    lines = output.splitlines()
    assert lines[0].startswith("dry run: would send 3 events in 2 requests (")
    assert lines[1] == "  by type: pageview 3"
    assert (
        lines[2].startswith("  would mark 1 dead unsent")
        and f"(purchase 1): #{huge.pk}" in lines[2]
    )
    verbose = run("tracify_flush", "--dry-run", "--batch-size", "2", "--verbosity", "2")
    assert events[0].payload["url"] in verbose and "request 2: 1 events" in verbose
    assert statuses() == ["pending"] * 4
    assert run("tracify_flush", "--dry-run", "--verbosity", "0") == ""


def test_dry_run_on_an_empty_outbox(receiver: Receiver) -> None:
    assert run("tracify_flush", "--dry-run") == (
        "dry run: nothing to send: the outbox has no due events\n"
    )


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    root = REPO_ROOT
    env = {**os.environ, "PYTHONPATH": str(root), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
        timeout=120,
    )


def test_help_lists_the_exit_codes_and_bad_arguments_are_not_a_refused_key() -> None:
    shown = _manage("tracify_flush", "--help")
    assert shown.returncode == 0
    assert "  2   Tracify refused the API key" in shown.stdout
    assert "  3   Tracify was unreachable for the whole pass" in shown.stdout
    assert "  64  bad command-line arguments" in shown.stdout
    typo = _manage("tracify_flush", "--batch-size", "0")
    assert typo.returncode == tracify_flush.EXIT_USAGE != tracify_flush.EXIT_UNAUTHORISED
    assert "--batch-size: '0' is not a whole number" in typo.stderr
