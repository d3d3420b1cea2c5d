"""The visitor's IP address: REMOTE_ADDR, or X-Forwarded-For behind trusted proxies only.

X-Forwarded-For is read right to left, because only the entries that the trusted proxies
appended can be believed: anything to their left is what the client sent, and can be forged.
python-ipware does the parsing and the proxy matching.
"""

from __future__ import annotations

from functools import lru_cache

from django.http import HttpRequest
from python_ipware import IpWare

from django_tracify.conf import settings

FORWARDED_FOR = "HTTP_X_FORWARDED_FOR"


@lru_cache(maxsize=8)
def proxy_resolver(proxy_count: int, proxies: tuple[str, ...]) -> IpWare:
    """An IpWare for the trusted-proxy settings (built once: it compiles the proxy list)."""
    return IpWare(
        precedence=(FORWARDED_FOR,),
        proxy_count=proxy_count or None,
        proxy_list=list(proxies) or None,
    )


def proxy_settings_problem() -> str | None:
    """What is wrong with TRUSTED_PROXIES, for the system check; None when it is usable."""
    proxies = settings.TRUSTED_PROXIES
    if not proxies:
        return None
    try:
        proxy_resolver(0, proxies)
    except (ValueError, TypeError) as err:
        return str(err)
    return None


def client_ip(request: HttpRequest) -> str:
    remote_addr = str(request.META.get("REMOTE_ADDR") or "")
    proxy_count = settings.TRUSTED_PROXY_COUNT
    proxies = settings.TRUSTED_PROXIES
    forwarded = request.META.get(FORWARDED_FOR)
    if not (proxy_count or proxies) or not forwarded or not remote_addr:
        return remote_addr
    # The proxy that connected to Django is the last hop of the chain: with it, a count of N
    # trusted proxies means "the N-th address from the right", and TRUSTED_PROXIES can name it.
    chain = f"{forwarded}, {remote_addr}"
    ip, trusted = proxy_resolver(proxy_count, proxies).get_client_ip({FORWARDED_FOR: chain})
    return str(ip) if ip is not None and trusted else remote_addr
