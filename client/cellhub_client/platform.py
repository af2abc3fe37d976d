"""Where the client runs: CPython, or Pyodide (a browser's Web Worker, a JupyterLite kernel).

In Pyodide, ``requests`` works once ``pyodide_http.patch_all()`` has run (synchronous
``XMLHttpRequest``: fine in a worker, where blocking freezes no page); the client calls it
itself (``prepare``). There is no WebSocket client there, so progress is polled. A network
failure surfaces as a JavaScript error (``JsException``), not as a ``requests`` error:
``TRANSPORT_ERRORS`` names both. ``sleep`` waits without spinning the CPU in a worker
(``Atomics.wait`` on a shared WebAssembly memory, which needs no cross-origin isolation);
Pyodide's ``time.sleep`` busy-waits.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import requests

IN_PYODIDE = sys.platform == "emscripten"

TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (requests.ConnectionError, requests.Timeout,
                                                     requests.exceptions.ChunkedEncodingError)
if IN_PYODIDE:  # pragma: no cover - runs in the browser (e2e/test_client_in_pyodide.py)
    from pyodide.ffi import JsException  # type: ignore[import-not-found]

    TRANSPORT_ERRORS = (*TRANSPORT_ERRORS, JsException)

_waiter: Any = None


def prepare() -> None:
    """Make ``requests`` work here (Pyodide: ``pyodide_http.patch_all()``; CPython: nothing)."""
    if IN_PYODIDE:  # pragma: no cover
        import pyodide_http  # type: ignore[import-not-found]

        pyodide_http.patch_all()


def websockets_available() -> bool:
    """True where the client can follow events on a WebSocket (CPython with ``websockets``)."""
    if IN_PYODIDE:
        return False
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        return False
    return True


def streams() -> bool:
    """Whether ``requests`` can stream an answer here: always in CPython; in Pyodide only in a
    cross-origin isolated worker (pyodide-http then reads through a second worker), else
    pyodide-http reads the whole answer first (asking to stream would only log a warning)."""
    if not IN_PYODIDE:
        return True
    import js  # type: ignore[import-not-found]  # pragma: no cover

    return bool(getattr(js, "crossOriginIsolated", False))  # pragma: no cover


def sleep(seconds: float) -> None:
    """Wait ``seconds``; in a browser worker without keeping a core busy."""
    if seconds <= 0:
        return
    if IN_PYODIDE and _worker_wait(seconds):  # pragma: no cover
        return
    time.sleep(seconds)


def _worker_wait(seconds: float) -> bool:  # pragma: no cover - browser only
    global _waiter
    try:
        import js  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        if _waiter is None:
            memory = js.WebAssembly.Memory.new(to_js({"initial": 1, "maximum": 1, "shared": True},
                                                     dict_converter=js.Object.fromEntries))
            _waiter = js.Int32Array.new(memory.buffer)
        js.Atomics.wait(_waiter, 0, 0, seconds * 1000)
        return True
    except Exception:  # noqa: BLE001 - the main thread may not wait: fall back to time.sleep
        return False
