"""Tracking calls made in an event loop's thread, where Django allows no database query.

An async view's own code, and the templates it renders with render(), run there. Inside a
request served by TracifyMiddleware (its async path) such a call is kept in memory and its
row written by the middleware, in a thread, as soon as the view has returned: before the
response leaves the middleware, so it counts for the landing URL parameters as a sync view's
event does. Elsewhere (no middleware) the call runs in a short-lived thread of its own while
the loop waits for it.
"""

from __future__ import annotations

import os
from asyncio import get_running_loop
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from functools import partial
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


class Deferred:
    """The calls kept while a request's view runs; once it has returned, none is taken (a
    task the view started may outlive it: its calls run in a thread instead)."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], object]] = []
        self.taking = True

    def __bool__(self) -> bool:
        return bool(self.calls)

    def run(self) -> None:
        """Run each call (in a thread where queries are allowed); all of them even if one
        raises (RAISE_ERRORS), then the first error is raised."""
        first_error: Exception | None = None
        while self.calls:
            call = self.calls.pop(0)
            try:
                call()
            except Exception as err:
                first_error = first_error or err
        if first_error is not None:
            raise first_error


_deferred: ContextVar[Deferred | None] = ContextVar("tracify_deferred", default=None)


def in_event_loop() -> bool:
    """Whether Django would refuse a query here (its async_unsafe check, env switch included)."""
    try:
        get_running_loop()
    except RuntimeError:
        return False
    return not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")


@contextmanager
def deferring() -> Iterator[Deferred]:
    """Keep the calls made in the event loop while the block runs (a request's view)."""
    deferred = Deferred()
    token = _deferred.set(deferred)
    try:
        yield deferred
    finally:
        deferred.taking = False
        _deferred.reset(token)


def defer(call: Callable[[], object]) -> bool:
    """Keep `call`, with the context variables of now, for Deferred.run(); False: nothing
    takes it (outside deferring())."""
    deferred = _deferred.get()
    if deferred is None or not deferred.taking:
        return False
    deferred.calls.append(partial(copy_context().run, call))
    return True


def run_outside_loop(call: Callable[[], T]) -> T:
    """Run `call` in a new thread and wait: the event loop is blocked meanwhile."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracify") as pool:
        return pool.submit(copy_context().run, _closing_connections, call).result()


def _closing_connections(call: Callable[[], T]) -> T:
    try:
        return call()
    finally:
        # The thread ends here: its connections would otherwise stay open until collected.
        connections.close_all()
