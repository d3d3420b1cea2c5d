from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.test import override_settings

from django_tracify.checks import (
    check_database,
    check_middleware,
    check_outbox_timeouts,
    check_settings,
)
from django_tracify.conf import DEFAULT_ENDPOINT, settings
from tests.middleware_lists import AUTH, SESSIONS, TRACIFY


def test_the_test_settings_pass() -> None:
    assert check_settings() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"API_KEY": ""}, "tracify.E001"),
        ({"CUSTOMER_SITE_ID": None}, "tracify.E002"),
        ({"CUSTOMER_SITE_ID": "shop-1"}, "tracify.E002"),
        ({"ENDPOINT": "http://api.tracify.ai/api/v1/events"}, "tracify.E003"),
        ({"ENDPOINT": "api.tracify.ai"}, "tracify.E003"),
        ({"BATCH_SIZE": 0}, "tracify.E004"),
        ({"TIMEOUT": "10"}, "tracify.E004"),
        ({"MAX_ATTEMPTS": True}, "tracify.E004"),
        ({"ORDER_ADAPTER": "shop.nowhere.adapter"}, "tracify.E005"),
        ({"CONSENT": 42}, "tracify.E005"),
        ({"TRUSTED_PROXIES": ["10.0.0.5", "the load balancer"]}, "tracify.E008"),
        ({"TRUSTED_PROXIES": "10.0.0.5"}, "tracify.E008"),
        ({"LEASE_SECONDS": 10, "TIMEOUT": 10}, "tracify.E010"),
        ({"LEASE_SECONDS": 300, "TIMEOUT": 200}, "tracify.E010"),
        ({"LEASE_SECONDS": 5}, "tracify.E010"),
        ({"BATCHSIZE": 10}, "tracify.W001"),
    ],
)
def test_each_bad_setting_gets_its_check(
    tracify_settings: Callable[..., None], overrides: dict[str, object], expected: str
) -> None:
    tracify_settings(**overrides)
    messages = check_settings()
    assert [m.id for m in messages] == [expected]
    assert messages[0].hint


def test_usable_trusted_proxies_pass(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(TRUSTED_PROXIES=["198.51.100.0/24", "10.1.", "2001:db8::1"])
    assert check_settings() == []


def test_a_bad_trusted_proxy_is_named(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(TRUSTED_PROXIES=["10.0.0.5", "the load balancer"])
    (problem,) = check_settings()
    assert "the load balancer" in problem.msg


def test_a_missing_key_with_tracking_off_is_a_warning_not_an_error(
    tracify_settings: Callable[..., None],
) -> None:
    """The quick start's settings on a machine without the variables: every command still runs."""
    tracify_settings(API_KEY=None, CUSTOMER_SITE_ID=None, ENABLED=False)
    (warning,) = check_settings()
    assert warning.id == "tracify.W003"
    assert "API_KEY" in warning.msg
    assert not warning.is_serious()


def test_tracking_turned_off_on_purpose_is_quiet(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(ENABLED=False)
    assert check_settings() == []


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        ([SESSIONS, AUTH, TRACIFY], []),
        ([SESSIONS, TRACIFY, AUTH], ["AuthenticationMiddleware"]),
        ([TRACIFY, SESSIONS, AUTH], ["SessionMiddleware", "AuthenticationMiddleware"]),
        ([SESSIONS], []),
    ],
)
def test_tracify_middleware_before_session_or_auth_is_reported(
    middleware: list[str], expected: list[str]
) -> None:
    with override_settings(MIDDLEWARE=middleware):
        messages = check_middleware()
    assert [m.id for m in messages] == ["tracify.W004"] * len(expected)
    for found, name in zip(messages, expected, strict=True):
        assert name in found.msg
        assert name in found.hint


def test_the_middleware_check_runs_with_manage_py_check() -> None:
    wrong_order = [TRACIFY, SESSIONS, AUTH]
    with override_settings(MIDDLEWARE=wrong_order):
        found = checks.run_checks(tags=["tracify"])
    assert "tracify.W004" in [m.id for m in found]


def test_plain_http_endpoint_is_allowed_in_debug(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(ENDPOINT="http://127.0.0.1:8765/api/v1/events")
    with override_settings(DEBUG=True):
        assert check_settings() == []


def test_tracify_must_be_a_dict() -> None:
    with override_settings(TRACIFY=["API_KEY"]):
        assert [m.id for m in check_settings()] == ["tracify.E004"]


def test_database_checks(tracify_settings: Callable[..., None]) -> None:
    assert check_database() == []
    tracify_settings(FLUSHERS=4)
    assert [m.id for m in check_database()] == ["tracify.W002"]
    tracify_settings(DATABASE="outbox")
    assert [m.id for m in check_database()] == ["tracify.E006"]


def test_settings_are_read_on_access(tracify_settings: Callable[..., None]) -> None:
    assert settings.ENDPOINT != DEFAULT_ENDPOINT
    tracify_settings(ENDPOINT=DEFAULT_ENDPOINT, BATCH_SIZE=7)
    assert (settings.ENDPOINT, settings.BATCH_SIZE) == (DEFAULT_ENDPOINT, 7)


def test_a_missing_required_value_names_the_key(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(API_KEY="")
    with pytest.raises(ImproperlyConfigured, match=r"TRACIFY\['API_KEY'\] is not set"):
        settings.API_KEY  # noqa: B018


def test_raise_errors_follows_debug(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(RAISE_ERRORS=None)
    assert settings.RAISE_ERRORS is False
    with override_settings(DEBUG=True):
        assert settings.RAISE_ERRORS is True


@pytest.mark.parametrize(
    ("engine", "options", "missing"),
    [
        ("postgresql", {}, "connect_timeout or statement_timeout"),
        ("postgresql", {"connect_timeout": 3}, "statement_timeout"),
        ("postgresql", {"options": "-c statement_timeout=3000"}, "connect_timeout"),
        ("postgresql", {"connect_timeout": 3, "options": "-c statement_timeout=3000"}, None),
        ("mysql", {"connect_timeout": 3}, "read_timeout or write_timeout"),
        ("mysql", {"connect_timeout": 3, "read_timeout": 3, "write_timeout": 3}, None),
        ("sqlite3", {}, None),
    ],
)
def test_an_outbox_database_of_its_own_needs_timeouts(
    tracify_settings: Callable[..., None],
    engine: str,
    options: dict[str, object],
    missing: str | None,
) -> None:
    if engine == "mysql":
        pytest.importorskip("MySQLdb")
    outbox = {"ENGINE": f"django.db.backends.{engine}", "NAME": "tracify", "OPTIONS": options}
    # connections.settings is settings.DATABASES; configure_settings fills in the defaults.
    connections.settings["tracify"] = outbox
    connections.configure_settings(connections.settings)
    try:
        tracify_settings(DATABASE="tracify")
        problems = check_outbox_timeouts()
    finally:
        del connections["tracify"]
        del connections.settings["tracify"]
    if missing is None:
        assert problems == []
        return
    (problem,) = problems
    assert problem.id == "tracify.W005"
    assert f"'tracify' has no {missing} in its DATABASES OPTIONS" in problem.msg
    assert "connect_timeout" in (problem.hint or "")


def test_the_shops_own_database_is_not_the_outbox_checks_concern(
    tracify_settings: Callable[..., None],
) -> None:
    assert check_outbox_timeouts() == []
    tracify_settings(DATABASE="default")
    assert check_outbox_timeouts() == []
