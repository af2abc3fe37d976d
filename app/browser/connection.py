"""Is the server there? ``ConnectionMonitor`` keeps ``PageState.connection`` true to life.

Signals it uses: the export hook's ``socket_connected`` (the WebSocket is up: online) and
the outcome of the page's own requests (``report_*``). While in doubt it probes
``GET /api/session`` with backoff (2 s, growing to 10 s): no answer -> ``offline``;
401 -> ``signed-out``; 200 -> ``online`` (the hook polls the job by itself while only the
WebSocket is down; the probe then goes on every 10 s until the WebSocket is back). ``on_back()`` runs each time the state returns to ``online``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from app.browser.net import Unreachable, request_json
from app.browser.page_state import PageState
from app.store import effect

GRACE_MS = 1500.0
"""How long the WebSocket may be down (connecting, reconnecting) before a probe."""
PROBE_FIRST_MS = 2000.0
PROBE_MAX_MS = 10_000.0
PROBE_TIMEOUT_MS = 5000


class ConnectionMonitor:
    """See the module doc. ``start()`` / ``stop()``; ``probe_now()`` for a "Try again" button."""

    def __init__(self, state: PageState, socket_connected: Any, on_back: Callable[[], None]) -> None:
        self.state = state
        self.socket_connected = socket_connected
        self.on_back = on_back
        self.generation = 0
        self.task: Optional[asyncio.Future] = None
        self.dispose: Callable[[], None] = lambda: None

    def start(self) -> None:
        def watch() -> None:
            if self.socket_connected.value:
                self.report_ok()
            else:
                self._probe_after(GRACE_MS)

        self.dispose = effect(watch, [self.socket_connected])

    def stop(self) -> None:
        self.dispose()
        self._cancel()

    # -- what the page's requests learnt
    def report_ok(self) -> None:
        self._cancel()
        self._set("online")

    def report_unreachable(self) -> None:
        if self.state.connection.peek() != "offline":
            self._set("offline")
        if self.task is None:
            self._probe_after(PROBE_FIRST_MS)

    def report_signed_out(self) -> None:
        self._set("signed-out")
        if self.task is None:
            self._probe_after(PROBE_MAX_MS)

    def probe_now(self) -> None:
        self._probe_after(0.0)

    # -- probing
    def _set(self, value: str) -> None:
        previous = self.state.connection.peek()
        if previous == value:
            return
        self.state.connection.value = value
        if value == "online" and previous != "online":
            self.on_back()

    def _cancel(self) -> None:
        self.generation += 1
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()

    def _probe_after(self, delay_ms: float) -> None:
        self._cancel()
        self.task = asyncio.ensure_future(self._probe_loop(self.generation, delay_ms))

    async def _probe_loop(self, generation: int, delay_ms: float) -> None:
        try:
            while generation == self.generation:
                if delay_ms > 0:
                    await asyncio.sleep(delay_ms / 1000.0)
                if generation != self.generation:
                    return
                if self.socket_connected.peek() and self.state.connection.peek() == "online":
                    break  # the WebSocket came up while we waited: nothing to find out
                try:
                    status, _ = await request_json("GET", "/api/session", timeout_ms=PROBE_TIMEOUT_MS)
                except Unreachable:
                    status = 0
                if generation != self.generation:
                    return
                if status == 200:
                    self._set("online")
                    # Only the WebSocket is down (a proxy may refuse it): the hook polls the
                    # job; keep an eye on the server at the slowest pace until it is back.
                    delay_ms = PROBE_MAX_MS
                    continue
                self._set("signed-out" if status == 401 else "offline")
                delay_ms = min(max(delay_ms * 1.6, PROBE_FIRST_MS), PROBE_MAX_MS)
        except asyncio.CancelledError:
            return
        if generation == self.generation:
            self.task = None
