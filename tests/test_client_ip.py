from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import RequestFactory

from django_tracify.client_ip import client_ip, proxy_settings_problem

PROXY = "10.0.0.2"


def ip_of(rf: RequestFactory, forwarded: str | None, remote: str = PROXY) -> str:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(rf.get("/", **extra))


def test_remote_addr_by_default_whatever_x_forwarded_for_says(rf: RequestFactory) -> None:
    assert ip_of(rf, "198.51.100.99", remote="203.0.113.7") == "203.0.113.7"
    assert ip_of(rf, None, remote="203.0.113.7") == "203.0.113.7"


def test_one_trusted_proxy_believes_only_the_entry_it_appended(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(TRUSTED_PROXY_COUNT=1)
    assert ip_of(rf, "198.51.100.20") == "198.51.100.20"
    # The client sent "X-Forwarded-For: 198.51.100.99"; the proxy appended what it saw.
    assert ip_of(rf, "198.51.100.99, 198.51.100.20") == "198.51.100.20"


def test_two_trusted_proxies_read_right_to_left(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(TRUSTED_PROXY_COUNT=2)
    assert ip_of(rf, "198.51.100.99, 198.51.100.20, 172.16.0.9") == "198.51.100.20"
    assert ip_of(rf, "2001:db8::1, 172.16.0.9") == "2001:db8::1"


def test_fewer_hops_than_trusted_proxies_falls_back_to_remote_addr(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(TRUSTED_PROXY_COUNT=2)
    assert ip_of(rf, "198.51.100.20") == PROXY
    assert ip_of(rf, "not-an-address") == PROXY


def test_trusted_proxy_addresses_must_match_the_hops(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
    assert ip_of(rf, "198.51.100.99, 198.51.100.20") == "198.51.100.20"
    # A client talking to Django directly, pretending to be behind the proxy.
    assert ip_of(rf, "198.51.100.20", remote="203.0.113.66") == "203.0.113.66"


def test_a_bad_trusted_proxy_entry_is_reported(tracify_settings: Callable[..., None]) -> None:
    assert proxy_settings_problem() is None
    tracify_settings(TRUSTED_PROXIES=["10.0.0.0/8", "proxy.internal"])
    problem = proxy_settings_problem()
    assert problem is not None and "proxy.internal" in problem


@pytest.mark.parametrize("remote", ["", None])
def test_no_remote_addr_is_an_empty_address(rf: RequestFactory, remote: str | None) -> None:
    request = rf.get("/")
    request.META["REMOTE_ADDR"] = remote
    assert client_ip(request) == ""
