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
- ``DELIVERY_TIMEOUT_MS`` = 10000: how long after handing the file to the browser the tab
  that did waits for the server to record the download (C9), asking ``DELIVERY_ASKS`` times
  (``confirm_delay_ms``); a tab that follows another tab's download asks once, after
  ``FOLLOWER_SLACK_MS`` more (that tab's word normally comes first).
"""
from __future__ import annotations

from typing import Callable, Optional

from app.machine.guards import DELIVERY_ASKS
from app.ports import Clock, Stop

AUTO_DOWNLOAD_DELAY_MS = 300.0
POLL_INTERVAL_MS = 2000.0
POLL_MAX_MS = 30_000.0
POLL_CONNECTED_MS = 30_000.0
CANCEL_REQUEST_DELAY_MS = 60.0
RECONNECT_BASE_MS = 500.0
RECONNECT_MAX_MS = 30_000.0
DELIVERY_TIMEOUT_MS = 10_000.0
CONFIRM_FIRST_MS = 500.0
FOLLOWER_SLACK_MS = 2_000.0


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


def confirm_delay_ms(attempt: int, handed_out_here: bool) -> float:
    """The wait before ask number ``attempt`` (0, 1...) of ``confirm_delivery``: 0.5 s, then
    doubling, the last of the ``DELIVERY_ASKS`` ending at ``DELIVERY_TIMEOUT_MS`` after the
    hand-out (0.5, 1.5, 3.5, 7.5 and 10 s); for a tab that follows another tab's download,
    its one ask after ``DELIVERY_TIMEOUT_MS`` + ``FOLLOWER_SLACK_MS``."""
    if not handed_out_here:
        return DELIVERY_TIMEOUT_MS + FOLLOWER_SLACK_MS
    if attempt + 1 >= DELIVERY_ASKS:
        return DELIVERY_TIMEOUT_MS - CONFIRM_FIRST_MS * (2 ** attempt - 1)
    return CONFIRM_FIRST_MS * 2 ** attempt


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
