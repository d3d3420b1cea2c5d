"""pytest fixtures for the local Tracify receiver; a plugin listed in conftest's pytest_plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tracify_receiver import Receiver

RECEIVER_API_KEY = "receiver-test-key-7f3a"


@pytest.fixture(scope="session")
def running_receiver() -> Iterator[Receiver]:
    """One Receiver for the session (stopping one takes half a second)."""
    with Receiver(token=RECEIVER_API_KEY, host="127.0.0.1") as running:
        yield running


@pytest.fixture
def receiver(running_receiver: Receiver, tracify_settings: Callable[..., None]) -> Receiver:
    """The Receiver on 127.0.0.1, reset; TRACIFY's ENDPOINT and API_KEY point at it.

    To change other TRACIFY keys in the same test use `receiver_settings(...)`, which keeps
    these two (`tracify_settings` alone would reset them).
    """
    running_receiver.reset()
    running_receiver.log = None
    tracify_settings(ENDPOINT=running_receiver.endpoint, API_KEY=RECEIVER_API_KEY)
    return running_receiver


@pytest.fixture
def receiver_settings(
    receiver: Receiver, tracify_settings: Callable[..., None]
) -> Callable[..., None]:
    """receiver_settings(BATCH_SIZE=5): tracify_settings that keeps pointing at the receiver."""

    def apply(**values: Any) -> None:
        tracify_settings(**{"ENDPOINT": receiver.endpoint, "API_KEY": RECEIVER_API_KEY, **values})

    return apply
