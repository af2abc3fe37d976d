"""What the e2e suite, the service tests and the benchmarks share to start real parts:
a free local port and Debian's Chromium with the flags every run uses.

Not product code: nothing under ``app/`` or ``server/`` imports it.
"""
from __future__ import annotations

import os
import socket

CHROMIUM = os.environ.get("CELLHUB_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium (``scripts/setup.sh --browser`` installs it); ``CELLHUB_CHROMIUM`` overrides."""

CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root in a container
    "--disable-gpu",
    "--disable-background-networking",  # no request may leave the machine (e2e checks it)
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
