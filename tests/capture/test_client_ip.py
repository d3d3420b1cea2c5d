from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.test import RequestFactory, override_settings
from hypothesis import example, given
from hypothesis import strategies as st

import django_tracify as tracify
from django_tracify.capture import client_ip as client_ip_module
from django_tracify.capture.client_ip import client_ip, proxy_settings_problem
from django_tracify.errors import TracifyValidationError
from django_tracify.models import OutboxEvent
from tests import settings as test_settings

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


NGINX_SAW = "198.51.100.20"


def behind_nginx(client_sent: str | None, client: str = NGINX_SAW) -> str:
    """X-Forwarded-For as nginx's $proxy_add_x_forwarded_for builds it."""
    return client if client_sent is None else f"{client_sent}, {client}"


@pytest.mark.parametrize(
    "client_sent",
    [
        '6.6.6.6, 7.7.7.7, "',
        '"6.6.6.6',
        "6.6.6.6, [7.7.7.7",
        "for=6.6.6.6",
        "6.6.6.6, unknown",
        "6.6.6.6,,",
        "  ",
    ],
)
@pytest.mark.parametrize("trust", [{"TRUSTED_PROXY_COUNT": 1}, {"TRUSTED_PROXIES": [PROXY]}])
def test_whatever_the_client_sends_only_the_entry_its_proxy_appended_is_read(
    rf: RequestFactory,
    tracify_settings: Callable[..., None],
    client_sent: str,
    trust: dict[str, Any],
) -> None:
    tracify_settings(**trust)
    assert ip_of(rf, behind_nginx(client_sent)) == NGINX_SAW


def test_a_malformed_entry_where_the_client_should_be_falls_back_to_remote_addr(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    tracify_settings(TRUSTED_PROXY_COUNT=2)
    # The outer proxy's entry is unreadable: what is left of it came from the client.
    assert ip_of(rf, '198.51.100.99, ", 172.16.0.9') == PROXY
    assert ip_of(rf, "198.51.100.99, 198.51.100.20, junk") == PROXY


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        (" 198.51.100.7 ", "198.51.100.7"),
    ],
)
def test_one_address_is_written_one_way_from_remote_addr_or_the_proxy_chain(
    rf: RequestFactory, tracify_settings: Callable[..., None], written: str, normalised: str
) -> None:
    assert ip_of(rf, None, remote=written) == normalised
    tracify_settings(TRUSTED_PROXY_COUNT=1)
    assert ip_of(rf, written) == normalised
    assert ip_of(rf, f"[{written.strip()}]:51234") == normalised


@pytest.mark.parametrize("remote", ["", None, "unix:/run/shop.sock", "not-an-address", "1.2.3"])
def test_no_usable_address_is_none_never_a_string_to_hash(
    rf: RequestFactory, remote: str | None
) -> None:
    request = rf.get("/")
    request.META["REMOTE_ADDR"] = remote
    assert client_ip(request) is None


@pytest.mark.parametrize("remote", ["", None])
@pytest.mark.parametrize("trust", [{"TRUSTED_PROXY_COUNT": 1}, {"TRUSTED_PROXIES": ["10.0.0.0/8"]}])
def test_over_a_unix_socket_the_proxy_chain_gives_the_address(
    rf: RequestFactory,
    tracify_settings: Callable[..., None],
    remote: str | None,
    trust: dict[str, Any],
) -> None:
    tracify_settings(**trust)
    request = rf.get("/", HTTP_X_FORWARDED_FOR=behind_nginx("6.6.6.6"))
    request.META["REMOTE_ADDR"] = remote
    assert client_ip(request) == NGINX_SAW


def test_over_a_unix_socket_two_listed_proxies_are_checked_like_over_tcp(
    rf: RequestFactory, tracify_settings: Callable[..., None]
) -> None:
    # A CDN, then nginx on the unix socket (which has no address to check).
    tracify_settings(TRUSTED_PROXIES=["192.0.2.0/24", "10.0.0.5"])
    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.20, 192.0.2.9")
    request.META["REMOTE_ADDR"] = ""
    assert client_ip(request) == "198.51.100.20"
    request.META["HTTP_X_FORWARDED_FOR"] = "6.6.6.6, 198.51.100.20"  # no CDN hop: a bypass
    assert client_ip(request) is None


def can_connect_from(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Not multicast, 0.0.0.0/8 or unallocated (python-ipware refuses those as clients)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return False
    if ip.is_loopback:
        return True
    return not (ip.is_multicast or ip.is_reserved or ip.is_unspecified or ip.packed[0] == 0)


visitor_ips = st.one_of(
    st.ip_addresses(v=4),
    st.ip_addresses(v=6, network="2000::/3"),
    st.ip_addresses(v=6, network="fc00::/7"),
    st.ip_addresses(v=6),
).filter(can_connect_from)
TRUSTS = [
    ({"TRUSTED_PROXY_COUNT": 1}, PROXY),
    ({"TRUSTED_PROXIES": ["10.0.0.0/8"]}, PROXY),
    ({"TRUSTED_PROXY_COUNT": 1}, ""),
    ({"TRUSTED_PROXIES": ["10.0.0.0/8"]}, ""),
]


@given(
    client_sent=st.one_of(st.none(), st.text(), st.text(alphabet='0123456789.:[]", ;=af')),
    visitor=visitor_ips,
    trust=st.sampled_from(TRUSTS),
)
@example(
    client_sent='6.6.6.6, 7.7.7.7, "', visitor=ipaddress.ip_address(NGINX_SAW), trust=TRUSTS[0]
)
def test_for_any_client_sent_prefix_the_address_read_is_the_one_nginx_appended(
    client_sent: str | None,
    visitor: ipaddress.IPv4Address | ipaddress.IPv6Address,
    trust: tuple[dict[str, Any], str],
) -> None:
    settings, remote = trust
    request = RequestFactory().get(
        "/", HTTP_X_FORWARDED_FOR=behind_nginx(client_sent, str(visitor)), REMOTE_ADDR=remote
    )
    with override_settings(TRACIFY={**test_settings.TRACIFY, **settings}):
        assert client_ip(request) == str(visitor)


@pytest.mark.django_db
def test_no_event_is_stored_under_the_hash_of_an_empty_address(
    rf: RequestFactory,
    tracify_settings: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client_ip_module, "missing_ip_logged", False)
    tracify_settings(RAISE_ERRORS=False)
    visitors = [
        rf.get("/", HTTP_HOST="shop.example.com", HTTP_USER_AGENT=f"Browser {n}") for n in (1, 2)
    ]
    for visitor in visitors:
        visitor.META["REMOTE_ADDR"] = ""
    with caplog.at_level(logging.WARNING, logger="django_tracify"):
        for visitor in visitors:
            assert tracify.track_pageview(visitor) is None
            assert tracify.track_conversion("lead-1", "1", "EUR", request=visitor) is None
    assert not OutboxEvent.objects.exists()
    [warning] = caplog.records
    assert "IP address" in warning.getMessage()
    assert "TRUSTED_PROXY_COUNT" in warning.getMessage()


def test_with_raise_errors_an_unknown_address_is_a_clear_error(rf: RequestFactory) -> None:
    request = rf.get("/", HTTP_HOST="shop.example.com", HTTP_USER_AGENT="Browser")
    request.META["REMOTE_ADDR"] = ""
    with pytest.raises(TracifyValidationError, match="IP address is unknown"):
        tracify.track_pageview(request)
