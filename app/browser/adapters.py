"""Browser implementations of the core's ports (``app.ports``): with the rest of
``app.browser``, the only code that touches ``js`` and ``pyodide``.

Every JS proxy made for a callback is destroyed by the ``Stop`` returned with it, so a
component that unmounts leaves no live proxy behind (``interop.LiveProxies``). Nothing here
blocks the main thread: HTTP is the async ``fetch`` of ``app.browser.net``.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_once_callable  # type: ignore[import-not-found]

from app.browser.interop import LiveProxies, is_missing, js_object, listen, once
from app.browser.net import Unreachable, request_json
from app import identity
from app.crosstab import CHANNEL_NAME, StorageChannel, StorageClaimLocks
from app.ports import HttpResponse, Ports, Stop

HTTP_TIMEOUT_MS = 15000
"""The hook's requests give up after this long (a network error to the machine: retried)."""


class FetchHttp:
    """``Http`` over ``app.browser.net.request_json``; ``Stop`` aborts the request."""

    def request(self, method, path, body, on_response, on_error) -> Stop:
        controller = js.AbortController.new()
        stopped = False

        async def run() -> None:
            try:
                status, parsed = await request_json(method, path, body, HTTP_TIMEOUT_MS, controller.signal)
            except Unreachable as exc:
                if not stopped:
                    on_error(str(exc))
                return
            if not stopped:
                on_response(HttpResponse(status, parsed))

        asyncio.ensure_future(run())

        def stop() -> None:
            nonlocal stopped
            if not stopped:
                stopped = True
                controller.abort()

        return stop


class BrowserSocket:
    """``Socket`` over ``window.WebSocket`` to ``/api/ws`` on the page's own host."""

    def connect(self, on_open, on_message, on_close) -> Stop:
        scheme = "wss" if js.location.protocol == "https:" else "ws"
        ws = js.WebSocket.new(f"{scheme}://{js.location.host}/api/ws")
        closed = False

        def handle_message(event: Any) -> None:
            if closed:
                return
            try:
                data = json.loads(event.data)
            except (TypeError, ValueError):
                return
            if isinstance(data, dict):
                on_message(data)

        def handle_close(event: Any) -> None:
            if not closed:
                release()
                on_close()

        def handle_open(event: Any) -> None:
            if not closed:
                on_open()

        proxies = [LiveProxies.make(handle_open), LiveProxies.make(handle_message), LiveProxies.make(handle_close)]
        ws.onopen, ws.onmessage, ws.onclose = proxies
        ws.onerror = None

        def release() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            ws.onopen = ws.onmessage = ws.onclose = None
            for proxy in proxies:
                LiveProxies.destroy(proxy)

        def stop() -> None:
            if not closed:
                release()
                try:
                    ws.close()
                except Exception:  # noqa: BLE001 - closing a dead socket is fine
                    pass

        return stop


class LocalStorage:
    """``Storage`` over ``window.localStorage``; ``subscribe`` listens to the ``storage`` event,
    which the browser fires only for changes made by other tabs."""

    def get(self, key: str) -> Optional[str]:
        value = js.localStorage.getItem(key)
        return None if is_missing(value) else str(value)

    def set(self, key: str, value: str) -> None:
        js.localStorage.setItem(key, value)

    def remove(self, key: str) -> None:
        js.localStorage.removeItem(key)

    def subscribe(self, on_change) -> Stop:
        def handler(event: Any) -> None:
            key = event.key
            if is_missing(key):
                return
            value = event.newValue
            on_change(str(key), None if is_missing(value) else str(value))

        return listen(js.window, "storage", handler)


class BroadcastChannelPort:
    """``Channel`` over BroadcastChannel ``cellhub-export`` (C6). Where the browser has no
    BroadcastChannel, ``browser_ports`` uses the core's ``crosstab.StorageChannel`` instead."""

    def __init__(self) -> None:
        self.channel = js.BroadcastChannel.new(CHANNEL_NAME)

    def post(self, message: dict) -> None:
        self.channel.postMessage(js_object(message))

    def subscribe(self, on_message) -> Stop:
        def handler(event: Any) -> None:
            raw = event.data
            data = raw.to_py() if hasattr(raw, "to_py") else raw
            # The core validates and drops (with a warning) anything not a C6 message.
            on_message(data if isinstance(data, dict) else {"malformed": str(data)})

        return listen(self.channel, "message", handler)


class WebLocks:
    """``Locks`` over ``navigator.locks.request(name, {ifAvailable: true}, cb)``; the lock is
    held until the release function is called. Without ``navigator.locks``, ``browser_ports``
    uses the core's ``crosstab.StorageClaimLocks`` (a localStorage claim with expiry, C4)."""

    def try_acquire(self, name: str, on_result) -> Stop:
        resolve: Any = None
        withdrawn = False

        def free() -> None:
            if resolve is not None:
                resolve()

        release = once(free)

        def granted(lock: Any) -> Any:
            nonlocal resolve
            LiveProxies.destroy(callback)
            if is_missing(lock):
                if not withdrawn:
                    on_result(None)
                return None

            def executor(done: Any, reject: Any) -> None:
                nonlocal resolve
                resolve = done

            promise = js.Promise.new(create_once_callable(executor))
            if withdrawn:
                release()
            else:
                on_result(release)
            return promise

        callback = LiveProxies.make(granted)
        js.navigator.locks.request(name, js_object({"ifAvailable": True}), callback)

        def stop() -> None:
            nonlocal withdrawn
            withdrawn = True
            release()

        return stop


class BrowserClock:
    """``Clock`` over ``Date.now`` and ``setTimeout``."""

    def now(self) -> float:
        return float(js.Date.now())

    def set_timeout(self, fn, ms) -> Stop:
        done = False  # fired or cleared

        def fire() -> None:
            nonlocal done
            if not done:
                done = True
                LiveProxies.count -= 1
                fn()

        proxy = create_once_callable(fire)
        LiveProxies.count += 1
        handle = js.setTimeout(proxy, max(0, ms))

        def stop() -> None:
            nonlocal done
            if not done:
                done = True
                js.clearTimeout(handle)
                LiveProxies.count -= 1
                proxy.destroy()

        return stop


class AnchorDownloader:
    """``Downloader``: a temporary ``<a download>`` clicked once; the browser streams the file."""

    def download(self, url: str, filename: Optional[str] = None) -> None:
        anchor = js.document.createElement("a")
        anchor.href = url
        anchor.download = filename or ""
        anchor.rel = "noopener"
        anchor.style.display = "none"
        js.document.body.appendChild(anchor)
        anchor.click()
        anchor.remove()


class DocumentVisibility:
    def subscribe(self, on_visible) -> Stop:
        def handler(event: Any) -> None:
            if str(js.document.visibilityState) == "visible":
                on_visible()

        return listen(js.document, "visibilitychange", handler)


class ConsoleLog:
    def warn(self, message: str) -> None:
        js.console.warn(f"[cellhub] {message}")


def _random_hex(digits: int) -> str:
    return str(js.crypto.randomUUID()).replace("-", "")[:digits]


def browser_ports() -> Ports:
    """All ports for this tab (its browser's id read from, or first written to, storage)."""
    tab_id = str(js.crypto.randomUUID())
    storage = LocalStorage()
    try:
        browser = identity.browser_id(storage, lambda: _random_hex(16))
    except Exception:  # noqa: BLE001 - storage disabled: this page is a browser of its own
        browser = _random_hex(16)
    clock = BrowserClock()
    has_channel = not is_missing(getattr(js.window, "BroadcastChannel", None))
    has_locks = not is_missing(getattr(js.navigator, "locks", None))
    return Ports(
        http=FetchHttp(),
        socket=BrowserSocket(),
        storage=storage,
        channel=BroadcastChannelPort() if has_channel else StorageChannel(storage, tab_id),
        locks=WebLocks() if has_locks else StorageClaimLocks(storage, clock, tab_id),
        clock=clock,
        downloader=AnchorDownloader(),
        visibility=DocumentVisibility(),
        log=ConsoleLog(),
        tab_id=tab_id,
        browser_id=browser,
    )
