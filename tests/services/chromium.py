"""Debian's Chromium, and the flags it needs on this closed network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_PATH = Path("/usr/bin/chromium")
# Without the networking flags Chromium keeps dialling Google's hosts, which this closed
# network refuses; --no-sandbox because CI runs as root. Callers add --headless themselves.
CHROMIUM_ARGS: list[str] = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


def chromium_executable() -> str | None:
    """The path of Debian's Chromium, or None when it is not installed."""
    if CHROMIUM_PATH.is_file() and os.access(CHROMIUM_PATH, os.X_OK):
        return str(CHROMIUM_PATH)
    return shutil.which("chromium")
