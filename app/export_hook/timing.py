"""The hook's delays (milliseconds) and ``after``, which starts a request after one.

- ``AUTO_DOWNLOAD_DELAY_MS`` = 300: the auto-download timer after a completion seen live;
  short enough to feel immediate, long enough for a cancel click in another tab, or its
  claim, to reach this one first (app/DECISIONS.md, C8 row).
- ``POLL_INTERVAL_MS`` = 2000 (C7) while the WebSocket is down, doubling per failed poll up
  to ``POLL_MAX_MS``; every ``POLL_CONNECTED_MS`` while it is up (an open socket can still
  lose a frame, F2).
- ``CANCEL_REQUEST_DELAY_MS`` = 60 before the first cancel request (C1: the cross-tab news
  and the marks go out at once, every tab repaints the cancel first; see DECISIONS.md).
- The WebSocket reconnects after ``reconnect_delay_ms``; a request is retried after
  ``retry_delay_ms``.
"""
from __future__ import annotations

from typing import Callable, Optional

from app.ports import Clock, Stop

AUTO_DOWNLOAD_DELAY_MS = 300.0
POLL_INTERVAL_MS = 2000.0
POLL_MAX_MS = 30_000.0
POLL_CONNECTED_MS = 30_000.0
CANCEL_REQUEST_DELAY_MS = 60.0
RECONNECT_BASE_MS = 500.0
RECONNECT_MAX_MS = 30_000.0


def retry_delay_ms(attempt: int) -> float:
    """Backoff before retry number ``attempt`` (0 = first try, no delay): 500 ms doubled
    per attempt, at most 10 s. Deterministic (no jitter) so tests and replays agree."""
    if attempt <= 0:
        return 0.0
    return float(min(500 * 2 ** (attempt - 1), 10_000))


def poll_delay_ms(errors: int) -> float:
    """C7: 2 s, doubled per consecutive failed poll, at most 30 s."""
    return min(POLL_INTERVAL_MS * 2 ** max(errors, 0), POLL_MAX_MS)


def reconnect_delay_ms(failures: int) -> float:
    """Socket reconnect backoff after ``failures`` consecutive closes (>= 1)."""
    return min(RECONNECT_BASE_MS * 2 ** max(failures - 1, 0), RECONNECT_MAX_MS)


def after(clock: Clock, delay_ms: float, send: Callable[[], Stop]) -> Stop:
    """Call ``send`` (which starts something and returns its ``Stop``) after ``delay_ms``, or
    now when the delay is 0; the returned ``Stop`` stops whichever is pending."""
    sent: Optional[Stop] = send() if delay_ms <= 0 else None

    def fire() -> None:
        nonlocal sent
        sent = send()

    timer = clock.set_timeout(fire, delay_ms) if sent is None else None

    def stop() -> None:
        if timer is not None:
            timer()
        if sent is not None:
            sent()

    return stop
