"""Browser implementations of the core's ports (``app.ports``): the only place, with the
rest of ``app.browser``, that touches ``js`` and ``pyodide``.

Every JS proxy made for a callback is destroyed by the ``Stop`` returned with it, so a
component that unmounts leaves no live proxy behind. Nothing here blocks the main thread:
HTTP uses the async ``fetch`` with an ``AbortController`` and a timeout.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Optional

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_once_callable, create_proxy, to_js  # type: ignore[import-not-found]

from app.crosstab import StorageChannel, StorageClaimLocks
from app.ports import Stop, HttpResponse, Ports

CHANNEL_NAME = "cellhub-export"
HTTP_TIMEOUT_MS = 15000


def js_object(value: dict) -> Any:
    """A plain JS object (not a Map) from a Python dict, recursively."""
    return to_js(value, dict_converter=js.Object.fromEntries)


def _is_missing(value: Any) -> bool:
    if isinstance(value, str):
        return False  # the common case, and repr() of a long stored value is not free
    return value is None or str(type(value)) == "<class 'pyodide.ffi.JsNull'>" or repr(value) == "undefined"


class LiveProxies:
    """Counts proxies this module created and has not destroyed (checked by the e2e tests)."""

    count = 0

    @classmethod
    def make(cls, fn: Callable) -> Any:
        cls.count += 1
        return create_proxy(fn)

    @classmethod
    def destroy(cls, proxy: Any) -> None:
        cls.count -= 1
        proxy.destroy()


class FetchHttp:
    """``Http`` over ``window.fetch`` with the CSRF header, JSON bodies and a timeout."""

    def request(self, method, path, body, on_response, on_error) -> Stop:
        controller = js.AbortController.new()
        state = {"cancelled": False, "timer": None}

        def on_timeout() -> None:
            state["timer"] = None
            controller.abort()

        timer_proxy = create_once_callable(on_timeout)
        state["timer"] = js.setTimeout(timer_proxy, HTTP_TIMEOUT_MS)

        async def run() -> None:
            headers = {"X-Requested-With": "cellhub", "Accept": "application/json"}
            init: dict[str, Any] = {"method": method, "headers": headers, "credentials": "same-origin"}
            if body is not None:
                headers["Content-Type"] = "application/json"
                init["body"] = json.dumps(body)
            init_js = js_object(init)
            init_js.signal = controller.signal
            try:
                response = await js.fetch(path, init_js)
                text = await response.text()
            except Exception as exc:  # noqa: BLE001 - network errors, aborts and timeouts alike
                finish()
                if not state["cancelled"]:
                    on_error(f"{method} {path}: no answer ({exc})")
                return
            finish()
            if state["cancelled"]:
                return
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = None
            on_response(HttpResponse(int(response.status), parsed))

        def finish() -> None:
            if state["timer"] is not None:
                js.clearTimeout(state["timer"])
                state["timer"] = None
                timer_proxy.destroy()

        asyncio.ensure_future(run())

        def cancel() -> None:
            if not state["cancelled"]:
                state["cancelled"] = True
                controller.abort()

        return cancel


class BrowserSocket:
    """``Socket`` over ``window.WebSocket`` to ``/api/ws`` on the page's own host."""

    def connect(self, on_open, on_message, on_close) -> Stop:
        scheme = "wss" if js.location.protocol == "https:" else "ws"
        ws = js.WebSocket.new(f"{scheme}://{js.location.host}/api/ws")
        state = {"closed": False}

        def handle_message(event: Any) -> None:
            if state["closed"]:
                return
            try:
                data = json.loads(event.data)
            except (TypeError, ValueError):
                return
            if isinstance(data, dict):
                on_message(data)

        def handle_close(event: Any) -> None:
            if not state["closed"]:
                release()
                on_close()

        def handle_open(event: Any) -> None:
            if not state["closed"]:
                on_open()

        proxies = [
            LiveProxies.make(handle_open),
            LiveProxies.make(handle_message),
            LiveProxies.make(handle_close),
        ]
        ws.onopen, ws.onmessage, ws.onclose = proxies
        ws.onerror = None

        def release() -> None:
            if state["closed"]:
                return
            state["closed"] = True
            ws.onopen = ws.onmessage = ws.onclose = None
            for proxy in proxies:
                LiveProxies.destroy(proxy)

        def cancel() -> None:
            if not state["closed"]:
                release()
                try:
                    ws.close()
                except Exception:  # noqa: BLE001 - closing a dead socket is fine
                    pass

        return cancel


class LocalStorage:
    """``Storage`` over ``window.localStorage``; ``subscribe`` listens to the ``storage`` event,
    which the browser fires only for changes made by other tabs."""

    def get(self, key: str) -> Optional[str]:
        value = js.localStorage.getItem(key)
        return None if _is_missing(value) else str(value)

    def set(self, key: str, value: str) -> None:
        js.localStorage.setItem(key, value)

    def remove(self, key: str) -> None:
        js.localStorage.removeItem(key)

    def subscribe(self, on_change) -> Stop:
        def handler(event: Any) -> None:
            key = event.key
            if _is_missing(key):
                return
            value = event.newValue
            on_change(str(key), None if _is_missing(value) else str(value))

        proxy = LiveProxies.make(handler)
        js.window.addEventListener("storage", proxy)
        return _once(lambda: (js.window.removeEventListener("storage", proxy), LiveProxies.destroy(proxy)))


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

        proxy = LiveProxies.make(handler)
        self.channel.addEventListener("message", proxy)
        return _once(lambda: (self.channel.removeEventListener("message", proxy), LiveProxies.destroy(proxy)))


class WebLocks:
    """``Locks`` over ``navigator.locks.request(name, {ifAvailable: true}, cb)``; the lock is
    held until the release function is called. Without ``navigator.locks``, ``browser_ports``
    uses the core's ``crosstab.StorageClaimLocks`` (a localStorage claim with expiry, C4)."""

    def try_acquire(self, name: str, on_result) -> Stop:
        state: dict[str, Any] = {"resolve": None, "withdrawn": False, "done": False}

        def release() -> None:
            if state["done"]:
                return
            state["done"] = True
            if state["resolve"] is not None:
                state["resolve"]()

        def granted(lock: Any) -> Any:
            LiveProxies.destroy(callback)
            if _is_missing(lock):
                if not state["withdrawn"]:
                    on_result(None)
                return None

            def executor(resolve: Any, reject: Any) -> None:
                state["resolve"] = resolve

            promise = js.Promise.new(create_once_callable(executor))
            if state["withdrawn"]:
                release()
            else:
                on_result(release)
            return promise

        callback = LiveProxies.make(granted)
        js.navigator.locks.request(name, js_object({"ifAvailable": True}), callback)

        def cancel() -> None:
            state["withdrawn"] = True
            release()

        return cancel


class BrowserClock:
    """``Clock`` over ``Date.now`` and ``setTimeout``."""

    def now(self) -> float:
        return float(js.Date.now())

    def set_timeout(self, fn, ms) -> Stop:
        state = {"fired": False, "cancelled": False}

        def fire() -> None:
            state["fired"] = True
            LiveProxies.count -= 1
            if not state["cancelled"]:
                fn()

        proxy = create_once_callable(fire)
        LiveProxies.count += 1
        handle = js.setTimeout(proxy, max(0, ms))

        def cancel() -> None:
            if state["fired"] or state["cancelled"]:
                return
            state["cancelled"] = True
            js.clearTimeout(handle)
            LiveProxies.count -= 1
            proxy.destroy()

        return cancel


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

        proxy = LiveProxies.make(handler)
        js.document.addEventListener("visibilitychange", proxy)
        return _once(lambda: (js.document.removeEventListener("visibilitychange", proxy), LiveProxies.destroy(proxy)))


class ConsoleLog:
    def warn(self, message: str) -> None:
        js.console.warn(f"[cellhub] {message}")


def _once(fn: Callable[[], Any]) -> Stop:
    done = {"v": False}

    def cancel() -> None:
        if not done["v"]:
            done["v"] = True
            fn()

    return cancel


def new_tab_id() -> str:
    return str(js.crypto.randomUUID())


def browser_ports() -> Ports:
    """All ports for this tab."""
    tab_id = new_tab_id()
    storage = LocalStorage()
    clock = BrowserClock()
    has_channel = not _is_missing(getattr(js.window, "BroadcastChannel", None))
    has_locks = not _is_missing(getattr(js.navigator, "locks", None))
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
    )
