"""What the e2e suite, the service tests and the benchmarks share to start and stop real parts:
a free local port, Debian's Chromium with the flags every run uses, and the stop of a child process.

Not product code: nothing under ``app/`` or ``server/`` imports it.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess

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


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """Send ``sig`` to ``proc`` if it still runs, wait up to ``timeout`` seconds for it to end,
    else SIGKILL it; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
