"""pytest fixtures for the local Tracify receiver; a plugin listed in conftest's pytest_plugins."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tracify_receiver import Receiver

RECEIVER_API_KEY = "receiver-test-key-7f3a"


@pytest.fixture
def receiver(tracify_settings: Callable[..., None]) -> Iterator[Receiver]:
    """A running Receiver on 127.0.0.1; TRACIFY's ENDPOINT and API_KEY point at it.

    To change other TRACIFY keys in the same test use `receiver_settings(...)`, which keeps
    these two (`tracify_settings` alone would reset them).
    """
    with Receiver(token=RECEIVER_API_KEY, host="127.0.0.1") as running:
        tracify_settings(ENDPOINT=running.endpoint, API_KEY=RECEIVER_API_KEY)
        yield running


@pytest.fixture
def receiver_settings(
    receiver: Receiver, tracify_settings: Callable[..., None]
) -> Callable[..., None]:
    """receiver_settings(BATCH_SIZE=5): tracify_settings that keeps pointing at the receiver."""

    def apply(**values: Any) -> None:
        tracify_settings(**{"ENDPOINT": receiver.endpoint, "API_KEY": RECEIVER_API_KEY, **values})

    return apply
