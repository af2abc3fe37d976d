"""The ports through which the pure core talks to the world (``typing.Protocol``).

The browser implements them in ``app.browser.adapters``; the tests implement them with
in-memory fakes (several "tabs" sharing one fake storage, channel bus and lock manager).
Every port is callback based and never blocks: a call returns at once, and results are
delivered later by calling the given callbacks. Every call that starts something
returns a ``Stop`` function, which effects return (or call) from their cleanups.
Times are milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

Stop = Callable[[], None]
"""Stops what the call that returned it started (aborts a request, clears a timer, ends a
subscription, withdraws a lock request); calling it again does nothing."""


def noop() -> None:
    """A ``Stop`` that does nothing."""


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer: ``status`` code and ``body`` parsed from JSON (None if not JSON)."""

    status: int
    body: Any = None


class Http(Protocol):
    def request(
        self,
        method: str,
        path: str,
        body: Optional[dict],
        on_response: Callable[[HttpResponse], None],
        on_error: Callable[[str], None],
    ) -> Stop:
        """Send a JSON request to the page's own server (``path`` starts with ``/``).

        ``on_response`` gets every HTTP answer, 4xx/5xx included; ``on_error`` gets a
        message when no answer came (network error, timeout). The returned ``Stop``
        aborts the request; after it neither callback runs.
        """


class Socket(Protocol):
    def connect(
        self,
        on_open: Callable[[], None],
        on_message: Callable[[dict], None],
        on_close: Callable[[], None],
    ) -> Stop:
        """Open the page's WebSocket (``/api/ws``). Messages arrive parsed from JSON.
        ``on_close`` runs when the connection is lost; the caller decides on reconnects.
        The returned ``Stop`` closes it and silences every callback."""


class Storage(Protocol):
    def get(self, key: str) -> Optional[str]: ...

    def set(self, key: str, value: str) -> None: ...

    def remove(self, key: str) -> None: ...

    def subscribe(self, on_change: Callable[[str, Optional[str]], None]) -> Stop:
        """Changes made by OTHER tabs (the ``storage`` event): ``(key, new_value)``."""


class Channel(Protocol):
    def post(self, message: dict) -> None:
        """Send to every other tab (BroadcastChannel ``cellhub-export``)."""

    def subscribe(self, on_message: Callable[[dict], None]) -> Stop: ...


class Locks(Protocol):
    def try_acquire(self, name: str, on_result: Callable[[Optional[Stop]], None]) -> Stop:
        """Ask for the exclusive lock ``name`` without waiting (Web Locks ``ifAvailable``).

        ``on_result`` gets a release function when granted, or None when another holder has
        it. The returned ``Stop`` withdraws the request (and releases it if granted)."""


class Clock(Protocol):
    def now(self) -> float:
        """Milliseconds since the Unix epoch."""

    def set_timeout(self, fn: Callable[[], None], ms: float) -> Stop: ...


class Downloader(Protocol):
    def download(self, url: str, filename: Optional[str] = None) -> None:
        """Hand ``url`` to the browser as a file download (one call = one download)."""


class Visibility(Protocol):
    def subscribe(self, on_visible: Callable[[], None]) -> Stop:
        """Runs ``on_visible`` each time the tab becomes visible."""


class Log(Protocol):
    def warn(self, message: str) -> None:
        """A console warning (used for dropped storage entries and messages)."""


@dataclass
class Ports:
    """Everything one tab's core needs from the outside world."""

    http: Http
    socket: Socket
    storage: Storage
    channel: Channel
    locks: Locks
    clock: Clock
    downloader: Downloader
    visibility: Visibility
    log: Log
    tab_id: str
    browser_id: Optional[str] = None
    """This browser's id (``app.identity``), shared by its tabs; None: no browser started
    any job (nothing is downloaded unasked)."""
    new_token: Optional[Callable[[], str]] = None
    """Names each start request (R1's ``start_token``: 1-64 of ``A-Za-z0-9._-``); by
    default ``<browser_id>.<tab_id>.<n>`` (``app.identity.start_token``), unique because a
    page's ``tab_id`` is a random UUID."""
