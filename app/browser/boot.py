"""First Python to run in the page: precompiled bytecode, the pinned wheels, then the page.
When the interpreter was restored from the memory snapshot (``window.cellhubBoot.path`` is
"snapshot", ``static/boot/snapshot-boot.mjs``), the wheels are loaded and the page's modules
imported already, and the boot goes straight to the page.

What the boot needs is requested by ``index.html`` before Python starts, and left in
``window.cellhubBoot``: ``project`` (the promise of the project JSON's ``[status, text]``),
``bytecode`` (the promise of the bytecode bundle's bytes, or null) and ``wheels`` (their
URLs; their bodies are already in the HTTP cache). So the boot waits for no network round
trip of its own.

The wheels (pydantic and its dependencies) go through ``pyodide_js.loadPackage`` by URL:
PyScript's ``packages`` would need micropip, which is not on the registries reachable
here. The bytecode bundle (``app.browser.bytecode``) is installed first, so that what
``loadPackage`` and the page import is not compiled in the browser; without one (not built
yet, or unusable) the page compiles its modules as Python always does.
``body[data-bytecode]`` says how many modules came from the bundle.

``performance.mark``s ``cellhub:boot``, ``cellhub:wheels`` (loaded), ``cellhub:imports``
(page modules imported) and ``cellhub:ready`` show where the boot's time goes
(``bench/p1_load.py`` reports them).
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import js  # type: ignore[import-not-found]
import pyodide_js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

from app.browser import bytecode


def _missing(value: Any) -> bool:
    """None, JS null (``pyodide.ffi.jsnull``) or undefined."""
    return value is None or type(value).__name__ == "JsNull" or repr(value) in ("null", "undefined")


async def install_bytecode(pending: Any) -> Optional[bytecode.BytecodeFinder]:
    """Install the bytecode bundle that ``pending`` (a promise of its bytes, or null)
    brings; None without a usable one (the page then compiles its modules itself)."""
    if _missing(pending):
        return None
    try:
        buffer = await pending
        if _missing(buffer):
            raise OSError("not served")
        return bytecode.install(buffer.to_bytes())
    except Exception as exc:  # noqa: BLE001 - a missing bundle costs speed, never the page
        js.console.warn(f"[cellhub] bytecode bundle not used: {exc}")
        return None


def _pending_bytecode(first: Any) -> Any:
    """The bundle's bytes as requested by ``index.html``; requested now when the page had
    expected a memory snapshot instead (it fell back: ``static/boot/snapshot-boot.mjs``)."""
    if first is None:
        return None
    if _missing(first.bytecode) and not _missing(getattr(first, "bytecodeUrl", None)):
        return js.fetch(first.bytecodeUrl).then(lambda r: r.arrayBuffer() if r.ok else None)
    return first.bytecode


async def load_wheels(urls: list[str]) -> None:
    if not urls:
        response = await js.fetch("/static/wheels/wheels.json")
        base = f"{js.location.origin}/static/wheels/"
        urls = [base + name for name in json.loads(await response.text())]
    await pyodide_js.loadPackage(to_js(urls))


async def boot() -> None:
    js.performance.mark("cellhub:boot")
    # The page's Python has no pydantic plugins (only the pinned wheels are installed);
    # without this, the first model scans every installed distribution's entry points.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    first = getattr(js.window, "cellhubBoot", None)
    first = None if _missing(first) else first
    finder = None
    if str(getattr(first, "path", "")) != "snapshot":  # restored: wheels and modules are in
        finder = await install_bytecode(_pending_bytecode(first))
        wheels = [str(js.URL.new(url, js.location.href).href) for url in first.wheels] if first is not None else []
        await load_wheels(wheels)
    js.performance.mark("cellhub:wheels")
    from app.browser.page import start_page

    js.performance.mark("cellhub:imports")
    js.document.body.dataset.bytecode = str(len(finder.hits) if finder is not None else 0)
    await start_page(first.project if first is not None and not _missing(first.project) else None)
    js.performance.mark("cellhub:ready")
