"""First Python to run in the page: load the pinned wheels from the server, then the page.

The wheels (pydantic and its dependencies, listed by ``/static/wheels/wheels.json``, which
``scripts/setup.sh`` writes) go through ``pyodide_js.loadPackage`` by URL: PyScript's
``packages`` would need micropip, which is not on the registries reachable here.
"""
from __future__ import annotations

import json

import js  # type: ignore[import-not-found]
import pyodide_js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]


async def load_wheels() -> None:
    response = await js.fetch("/static/wheels/wheels.json")
    names = json.loads(await response.text())
    base = f"{js.location.origin}/static/wheels/"
    await pyodide_js.loadPackage(to_js([base + name for name in names]))


async def boot() -> None:
    await load_wheels()
    from app.browser.page import start_page

    await start_page()
