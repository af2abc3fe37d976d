"""The pure core runs the same in Pyodide (Chromium) as in CPython: the fixed scenario of
``app.trace_scenario`` (store effect order, hook commits, machine transitions) gives the
same trace in the page's Python (``testkit/pages/test/trace.html``) as here."""
from __future__ import annotations

import json
import sys

from app.trace_scenario import MACHINE_EVENTS, run_trace


def test_store_hooks_and_machine_trace_in_pyodide_equals_cpython(user):
    tab = user.open_tab("/test-pages/test/trace.html")
    version = tab.page.locator("#python-version").inner_text()
    in_browser = json.loads(tab.page.locator("#trace").inner_text())
    here = run_trace()
    assert version.startswith("3.14") and not sys.version.startswith("3.14")  # two interpreters indeed
    assert len(here) > len(MACHINE_EVENTS) + 40
    assert [p for p in ("store:", "hooks:", "machine:") if any(line.startswith(p) for line in in_browser)] \
        == ["store:", "hooks:", "machine:"]
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(in_browser, here)) if a != b]
    assert in_browser == here, f"first differences (line, Pyodide, CPython): {diff[:5]}; lengths {len(in_browser)} {len(here)}"
