"""DOM helpers and ``Component``: a piece of the page that can be mounted and unmounted.

A component owns three kinds of resources and gives all of them back on ``unmount()``:
its DOM (removed, unless it adopted an element already in the page), its store effects
(disposed through one ``app.store.Scope``) and its JS proxies (every listener added with
``listen``/``every`` is removed and its proxy destroyed, counted in ``LiveProxies``). So
mounting and unmounting it any number of times leaves no proxy and no effect behind.

``Component.effect(fn, later=True)`` re-renders in a task of its own (``LATER``, see
``app.browser.later``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import js  # type: ignore[import-not-found]
from pyodide.ffi import create_proxy  # type: ignore[import-not-found]

from app.browser.interop import LiveProxies, is_missing, listen, once
from app.browser.later import Later, LaterEffect
from app.ports import Stop
from app.store import Scope, effect


def el(element_id: str) -> Any:
    """``document.getElementById``; None-like (JS null) when missing."""
    return js.document.getElementById(element_id)


def h(tag: str, attrs: Optional[dict] = None, *children: Any) -> Any:
    """A new element. ``attrs``: ``class_``/``text`` and ``data`` (a dict of ``data-<name>``
    attributes, names in kebab-case) are special; booleans set or leave out an attribute; other values become attributes.
    ``children``: elements or strings (text nodes); None is skipped."""
    node = js.document.createElement(tag)
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        if key == "class_":
            node.className = value
        elif key == "text":
            node.textContent = str(value)
        elif key == "data":
            for name, item in value.items():
                node.setAttribute(f"data-{name}", str(item))
        elif value is True:
            node.setAttribute(key, "")
        else:
            node.setAttribute(key, str(value))
    for child in children:
        if child is None:
            continue
        node.append(child if not isinstance(child, (str, int, float)) else js.document.createTextNode(str(child)))
    return node


def set_text(node: Any, text: str) -> None:
    """Set ``textContent`` only when it differs (no needless layout or announcements)."""
    if str(node.textContent) != text:
        node.textContent = text


def attr(node: Any, name: str) -> str:
    """``node.getAttribute(name)`` as a string, ``""`` when the attribute is absent
    (reading a missing JS property through a proxy raises, an attribute does not)."""
    value = node.getAttribute(name)
    return "" if is_missing(value) else str(value)


class _Timeout0:
    """``setTimeout(run, 0)`` through one JS proxy kept for the page's lifetime (it is not
    counted in ``LiveProxies``: no component makes or releases it)."""

    def __init__(self) -> None:
        self.proxy: Any = None
        self.run: Callable[[], None] = lambda: None

    def __call__(self, run: Callable[[], None]) -> None:
        self.run = run
        if self.proxy is None:
            self.proxy = create_proxy(lambda *args: self.run())
        js.setTimeout(self.proxy, 0)


LATER = Later(_Timeout0())
"""The page's queue of work for a later task (``app.browser.later``)."""


class Component:
    """Base class: override ``build()`` (return the root element) and ``setup()`` (add
    listeners with ``listen``, effects with ``effect``, timers with ``every``). ``mount``
    calls both; ``unmount`` undoes everything (idempotent). ``on_unmount(fn)`` adds a
    cleanup (run in reverse order of adding)."""

    def __init__(self) -> None:
        self.root: Any = None
        self._adopted = False
        self._scope: Optional[Scope] = None
        self._cleanups: list[Callable[[], Any]] = []

    @property
    def mounted(self) -> bool:
        return self.root is not None

    def build(self) -> Any:
        raise NotImplementedError

    def setup(self) -> None:
        """Wire listeners and effects; runs with the component's scope as owner."""

    def mount(self, parent: Any = None, before: Any = None) -> None:
        """Build the root and insert it into ``parent`` (before ``before``); without a
        ``parent`` the root ``build()`` returns is already in the page (adopted: unmount
        leaves it there)."""
        if self.mounted:
            return
        self.root = self.build()
        self._adopted = parent is None
        if parent is not None:
            parent.insertBefore(self.root, before)
        self._scope = Scope()
        with self._scope:
            self.setup()

    def unmount(self) -> None:
        if not self.mounted:
            return
        if self._scope is not None:
            self._scope.dispose()
            self._scope = None
        cleanups, self._cleanups = self._cleanups, []
        for fn in reversed(cleanups):
            fn()
        if not self._adopted:
            self.root.remove()
        self.root = None

    def listen(self, target: Any, kind: str, handler: Callable[[Any], Any]) -> None:
        """``target.addEventListener(kind, handler)`` until unmount."""
        self.on_unmount(listen(target, kind, handler))

    def effect(self, fn: Callable[[], Any], deps: Any = None, later: bool = False) -> None:
        """A store effect owned by this component (disposed on unmount). ``later=True``:
        a ``LaterEffect`` (auto-tracked, re-runs in a task of its own; no ``deps``)."""
        if not later:
            effect(fn, deps)
            return
        if deps is not None:
            raise ValueError("a later effect tracks its dependencies itself")
        runner = LaterEffect(fn, LATER)
        self.on_unmount(runner.dispose)
        runner.start()

    def on_unmount(self, fn: Callable[[], Any]) -> None:
        self._cleanups.append(fn)

    def find(self, selector: str) -> Any:
        """The first element under the root matching a CSS ``selector``."""
        return self.root.querySelector(selector)


def every(ms: float, fn: Callable[[], Any]) -> Stop:
    """``setInterval(fn, ms)``; returns a ``Stop`` that clears it and destroys the proxy
    (idempotent). Meant to be returned as an effect's cleanup."""
    proxy = LiveProxies.make(lambda *args: fn())
    handle = js.setInterval(proxy, ms)

    def stop() -> None:
        js.clearInterval(handle)
        LiveProxies.destroy(proxy)

    return once(stop)
