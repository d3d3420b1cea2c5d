from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_tracify.checks import MESSAGES, check_database, check_settings
from django_tracify.conf import DEFAULT_ENDPOINT, settings


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
        ({"LEASE_SECONDS": 10, "TIMEOUT": 10}, "tracify.E009"),
        ({"LEASE_SECONDS": 300, "TIMEOUT": 200}, "tracify.E009"),
        ({"LEASE_SECONDS": 5}, "tracify.E009"),
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


def test_missing_key_is_fine_when_disabled(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(API_KEY=None, CUSTOMER_SITE_ID=None, ENABLED=False)
    assert check_settings() == []


def test_plain_http_endpoint_is_allowed_in_debug(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(ENDPOINT="http://127.0.0.1:8765/api/v1/events")
    with override_settings(DEBUG=True):
        assert check_settings() == []


def test_tracify_must_be_a_dict() -> None:
    with override_settings(TRACIFY=["API_KEY"]):
        assert [m.id for m in check_settings()] == ["tracify.E004"]


def test_the_api_key_is_never_in_a_check_message(tracify_settings: Callable[..., None]) -> None:
    tracify_settings(API_KEY="sk-live-0123", CUSTOMER_SITE_ID="nope", BATCH_SIZE=-1)
    for message in check_settings():
        assert "sk-live-0123" not in str(message)


def test_every_check_id_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for check_id in MESSAGES:
        assert check_id in readme


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
