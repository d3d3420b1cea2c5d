"""The visitor's IP address: REMOTE_ADDR, or X-Forwarded-For behind trusted proxies only.

X-Forwarded-For is split on commas and read right to left, because only the entries that
the trusted proxies appended can be believed: anything to their left is what the client sent,
and can be forged (quotes and brackets included, so nothing to the left is ever parsed).
python-ipware matches the hops against TRUSTED_PROXIES. Every address is written one way
(IPv4-mapped IPv6 as IPv4, IPv6 compressed and lower-case), so one visitor has one hash.
"""

from __future__ import annotations

import ipaddress
import logging
from functools import lru_cache

from django.http import HttpRequest
from python_ipware import IpWare

from django_tracify.conf import settings
from django_tracify.errors import TracifyValidationError
from django_tracify.events.identity import Identity
from django_tracify.outbox import capture_problems, pause
from django_tracify.routers import outbox_database

logger = logging.getLogger(__name__)

FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"
NO_CLIENT_IP = (
    "the visitor's IP address is unknown (REMOTE_ADDR is empty or not an address, as behind "
    "a proxy on a unix socket): set TRACIFY['TRUSTED_PROXY_COUNT'] or ['TRUSTED_PROXIES'] "
    "so that X-Forwarded-For is read. Tracify requires the IP address: events are not stored"
)
missing_ip_logged = False


@lru_cache(maxsize=8)
def proxy_resolver(proxies: tuple[str, ...]) -> IpWare:
    """An IpWare for TRUSTED_PROXIES (built once: it compiles the proxy list)."""
    return IpWare(precedence=(FORWARDED_FOR,), proxy_list=list(proxies))


def proxy_settings_problem() -> str | None:
    """What is wrong with TRUSTED_PROXIES, for the system check; None when it is usable."""
    proxies = settings.TRUSTED_PROXIES
    if not proxies:
        return None
    try:
        proxy_resolver(proxies)
    except (ValueError, TypeError) as err:
        return str(err)
    return None


def normalised_ip(text: str) -> str | None:
    """`text` as an IP address written one way, or None if it is not one."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:443
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 198.51.100.7:51234
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def client_ip(request: HttpRequest) -> str | None:
    """The visitor's address, normalised; None when the request gives no usable one."""
    raw_remote = str(request.META.get("REMOTE_ADDR") or "")
    remote = normalised_ip(raw_remote)
    forwarded = request.META.get(FORWARDED_FOR)
    listed = settings.TRUSTED_PROXIES
    proxy_hops = len(listed) or settings.TRUSTED_PROXY_COUNT
    if not proxy_hops or not forwarded:
        return remote
    hops = str(forwarded).split(",")
    if remote is None:
        # A unix socket: only a local process, the last proxy, can connect; it has no address.
        proxy_hops, listed = proxy_hops - 1, listed[:-1]
    else:
        hops.append(raw_remote)
    if len(hops) <= proxy_hops:
        return remote  # it came through fewer proxies: a request from inside, say
    appended = [normalised_ip(hop) for hop in hops[len(hops) - proxy_hops - 1 :]]
    if None in appended or (listed and not passed_through(listed, appended)):
        return remote
    return appended[0]


def passed_through(listed: tuple[str, ...], chain: list[str | None]) -> bool:
    """Whether the hops after the client in `chain` are the TRUSTED_PROXIES `listed`."""
    header = {FORWARDED_FOR: ", ".join(str(hop) for hop in chain)}
    ip, trusted = proxy_resolver(listed).get_client_ip(header, strict=True)
    return ip is not None and bool(trusted)


def lost_without_client_ip(identity: Identity, event_type: str) -> bool:
    """True if the event cannot be recorded: Tracify requires the IP address, and it is unknown.

    Raises with RAISE_ERRORS; else the loss is reported (logged once per process).
    """
    if identity.ip is not None:
        return False
    if settings.RAISE_ERRORS:
        raise TracifyValidationError("identity_data", NO_CLIENT_IP)
    report_lost_without_client_ip(event_type)
    return True


def report_lost_without_client_ip(event_type: str) -> None:
    global missing_ip_logged
    capture_problems.record(capture_problems.NO_CLIENT_IP)
    # No write failed here: the count may be saved now, unless the outbox database is paused.
    using = outbox_database()
    if not pause.is_paused(using):
        capture_problems.save_after_write(using)
    if not missing_ip_logged:
        missing_ip_logged = True
        logger.warning("tracify: %s not recorded: %s", event_type, NO_CLIENT_IP)
