"""A deadline for a whole HTTP request made with requests.

requests' timeout bounds each socket operation, not the request: an answer dripping in a byte
at a time never times out. Here a timer shuts the request's socket down at the deadline, which
ends the request with a requests.ConnectionError (or ChunkedEncodingError) wherever it waits.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class _Watch:
    """The connections one request used, and whether its deadline cut them."""

    def __init__(self) -> None:
        self.connections: list[HTTPConnection] = []
        self.expired = False
        self._lock = threading.Lock()

    def add(self, connection: HTTPConnection) -> None:
        with self._lock:
            self.connections.append(connection)
            expired = self.expired
        if expired:
            _cut(connection)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            connections = list(self.connections)
        for connection in connections:
            _cut(connection)


def _cut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


_current: ContextVar[_Watch | None] = ContextVar("tracify_request_watch", default=None)


def _watched(connection: HTTPConnection) -> None:
    watch = _current.get()
    if watch is not None:
        watch.add(connection)


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _watched(self)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose requests `deadline()` can cut (through HTTP proxies too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOLS
        return manager


@contextmanager
def deadline(seconds: float) -> Iterator[_Watch]:
    """Requests made through a DeadlineAdapter in this block end by `seconds` from now.

    The watch's `expired` says afterwards whether the deadline cut them.
    """
    watch = _Watch()
    timer = threading.Timer(seconds, watch.expire)
    timer.daemon = True
    token = _current.set(watch)
    timer.start()
    try:
        yield watch
    finally:
        timer.cancel()
        _current.reset(token)
