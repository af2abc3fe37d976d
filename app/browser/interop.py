"""The page's helpers over JS values and JS proxies, in one place.

- ``is_missing(value)``: None, JS ``null`` (``pyodide.ffi.jsnull``) or ``undefined``;
- ``js_object(dict)``: a plain JS object (not a ``Map``), recursively;
- ``LiveProxies``: makes and destroys the proxies of callbacks handed to JS, counting the
  live ones (``window.cellhubLiveProxies()``; the e2e tests check that unmounting gives
  every one back);
- ``once(fn)``: a ``Stop`` that calls ``fn`` the first time only.
"""
from __future__ import annotations

from typing import Any, Callable

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy, to_js  # type: ignore[import-not-found]

from app.ports import Stop


def is_missing(value: Any) -> bool:
    """True for None, JS ``null`` and ``undefined``."""
    if value is None:
        return True
    if isinstance(value, (str, int, float)):
        return False  # the common case; repr() of a long stored string is not free
    return type(value).__name__ == "JsNull" or repr(value) in ("undefined", "null")


def js_object(value: dict) -> Any:
    """A plain JS object (not a Map) from a Python dict, recursively."""
    return to_js(value, dict_converter=js.Object.fromEntries)


class LiveProxies:
    """Counts the proxies made here and not destroyed yet."""

    count = 0

    @classmethod
    def make(cls, fn: Callable) -> Any:
        cls.count += 1
        return create_proxy(fn)

    @classmethod
    def destroy(cls, proxy: Any) -> None:
        cls.count -= 1
        proxy.destroy()


def once(fn: Callable[[], Any]) -> Stop:
    """A ``Stop`` that runs ``fn`` on its first call and does nothing after."""
    done = False

    def stop() -> None:
        nonlocal done
        if not done:
            done = True
            fn()

    return stop


def listen(target: Any, kind: str, handler: Callable[[Any], Any]) -> Stop:
    """``target.addEventListener(kind, handler)`` through a counted proxy; the returned
    ``Stop`` removes the listener and destroys the proxy."""
    proxy = LiveProxies.make(handler)
    target.addEventListener(kind, proxy)

    def remove() -> None:
        target.removeEventListener(kind, proxy)
        LiveProxies.destroy(proxy)

    return once(remove)
