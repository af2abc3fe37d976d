"""P1: time to interactive of the export page against a bare page, cold and warm cache.

Time to interactive: navigation start (``performance.timeOrigin``) until ``body[data-ready]``
becomes ``true``, stamped in the page by a MutationObserver with ``performance.now()``.
First paint: the ``first-contentful-paint`` entry (the static markup, before Python runs).

Baseline, in the same run: ``testkit/pages/bench/bare.html`` (at ``/test-pages/bench/bare.html``), served by the same server, which boots
the same PyScript and Pyodide, loads the same wheels and imports pydantic, nothing else.
Cold: a new browser context (empty HTTP cache, so also no cached compiled wasm); warm: the
same URL again in that context. The operating system's file cache is warm in both.

The export page imports its modules from the server's precompiled bytecode bundle
(``app.browser.bytecode``), which the server builds with Node.js the first time a page is
asked for: the bench waits until it is served, so every sample has it (the bare page has
none: it is the runtime as shipped). Where the page's own Python goes is read from its
``performance.mark``s (``app.browser.boot``).
"""
from __future__ import annotations

import re
import statistics
import time
import tomllib
from typing import Any

from bench.common import ROOT, BenchResult, Row, Summary, alternate, interpreter_url

PROFILES = {"full": {"runs": 10}, "quick": {"runs": 2}, "tiny": {"runs": 1}}
"""Runs per variant: the interpreter's start alone spreads over seconds on a shared machine,
so the medians need more than a handful of samples."""
READY_TIMEOUT_MS = 180_000
BYTECODE_TIMEOUT_S = 300
TARGET = 1.15
BARE = "/test-pages/bench/bare.html"
BOOT_PHASES = (("py:ready -> boot", "py_ready", "cellhub:boot"),
               ("bytecode + wheels", "cellhub:boot", "cellhub:wheels"),
               ("imports", "cellhub:wheels", "cellhub:imports"),
               ("project + first render", "cellhub:imports", "cellhub:ready"))

READY_JS = """
(() => {
  // PyScript's py:ready bubbles from its script element when the interpreter is up (config
  // and [files] fetched), just before the page's Python runs.
  document.addEventListener('py:ready', () => { window.__benchPyReady ??= performance.now(); }, true);
  const mark = () => {
    if (!window.__benchReady && document.body && document.body.dataset.ready === 'true')
      window.__benchReady = performance.now();
  };
  new MutationObserver(mark).observe(document, {subtree: true, childList: true, attributes: true,
                                                attributeFilter: ['data-ready']});
})();
"""

MEASURE_JS = """() => {
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource');
  const marks = Object.fromEntries(performance.getEntriesByType('mark')
    .filter((m) => m.name.startsWith('cellhub:')).map((m) => [m.name, m.startTime]));
  return {ready: window.__benchReady, py_ready: window.__benchPyReady ?? null, fcp: fcp ? fcp.startTime : null,
          requests: res.length + 1, marks, bytecode: document.body.dataset.bytecode ?? null,
          transferred: res.reduce((s, r) => s + (r.transferSize || 0), nav ? nav.transferSize : 0)};
}"""


def check_bare_page() -> None:
    """Raise ``AssertionError`` unless the bare page uses the export page's PyScript and
    Pyodide (so a version bump cannot silently leave the baseline behind)."""
    index = (ROOT / "index.html").read_text()
    bare = (ROOT / "testkit" / "pages" / "bench" / "bare.html").read_text()
    core = re.search(r'src="(/static/vendor/pyscript/[^"]+/core\.js)"', index)
    assert core and core.group(1) in bare, "bare.html must load the export page's PyScript core.js"
    bare_toml = tomllib.loads((ROOT / "testkit" / "pages" / "bench" / "bare.toml").read_text())
    assert bare_toml["interpreter"] == interpreter_url(), "bare.toml must name the export page's Pyodide"


def wait_for_bytecode(env: Any, user: tuple[str, str], timeout_s: float = BYTECODE_TIMEOUT_S) -> bool:
    """Ask for the export page until its boot manifest names a bytecode bundle (the first
    request starts the server's build); False if none came within ``timeout_s``."""
    context = env.browser.signed_in_context(env.server, *user)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            html = context.request.get(env.server.base_url + "/").text()
            if re.search(r'"bytecode": "/bytecode-[0-9a-f]+\.bin"', html):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(1)
    finally:
        context.close()


def _load(page: Any, url: str) -> dict:
    page.goto(url, wait_until="commit")
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS, state="attached")
    page.wait_for_function("() => window.__benchReady !== undefined", timeout=10_000)
    return page.evaluate(MEASURE_JS)


def run(profile: str, env: Any) -> BenchResult:
    """Measure P1 (``profile``: full, quick or tiny) with ``env``'s server and browser."""
    check_bare_page()
    runs = PROFILES[profile]["runs"]
    server, browser = env.server, env.browser
    user = server.new_user()
    with_bytecode = wait_for_bytecode(env, user)
    samples: dict[str, list[dict]] = {f"{v}/{c}": [] for v in ("page", "bare") for c in ("cold", "warm")}

    def one(variant: str, _run: int) -> None:
        context = browser.signed_in_context(server, *user)
        try:
            context.add_init_script(READY_JS)
            page = context.new_page()
            url = server.base_url + ("/" if variant == "page" else BARE)
            samples[f"{variant}/cold"].append(_load(page, url))
            samples[f"{variant}/warm"].append(_load(page, url))
        finally:
            context.close()

    # One warm-up of each outside the samples: the server's first answers (thumbnails made
    # once, Python imports) are not what a page load costs.
    for variant in ("page", "bare"):
        one(variant, -1)
    for key in samples:
        samples[key].clear()
    alternate(["page", "bare"], runs, one)

    result = BenchResult("P1", "Time to interactive of the export page vs a bare Pyodide page", {
        "export page": "GET / (demo project as ./run seeds it: 12 images of 512x512, signed-in user)",
        "bare page": BARE + " (same PyScript + Pyodide + wheels, import pydantic)",
        "runs": runs, "cold": "new browser context (empty HTTP cache)", "warm": "same URL again in that context",
    })
    for cache in ("cold", "warm"):
        page = Summary.of([s["ready"] for s in samples[f"page/{cache}"]])
        bare = Summary.of([s["ready"] for s in samples[f"bare/{cache}"]])
        result.rows.append(Row(f"TTI, {cache} cache", "ms", page, bare, "bare page").judge(max_ratio=TARGET))
    for cache in ("cold", "warm"):
        page = _summary([s["fcp"] for s in samples[f"page/{cache}"] if s["fcp"] is not None])
        bare = _summary([s["fcp"] for s in samples[f"bare/{cache}"] if s["fcp"] is not None])
        result.rows.append(Row(f"first contentful paint, {cache}", "ms", page, bare, "bare page").judge())
    for cache in ("cold", "warm"):
        for phase, pick in (("interpreter up (py:ready)", lambda s: s["py_ready"]),
                            ("page Python after py:ready", lambda s: s["ready"] - s["py_ready"])):
            page = _summary([pick(s) for s in samples[f"page/{cache}"] if s["py_ready"] is not None])
            bare = _summary([pick(s) for s in samples[f"bare/{cache}"] if s["py_ready"] is not None])
            result.rows.append(Row(f"{phase}, {cache}", "ms", page, bare, "bare page").judge())
    for variant in ("page", "bare"):
        cold = samples[f"{variant}/cold"]
        warm = samples[f"{variant}/warm"]
        result.notes.append(
            f"{variant}: {cold[0]['requests']} requests; bytes over the network cold "
            f"{_mib(cold)} MiB, warm {_mib(warm)} MiB (median transferSize sum)")
    page_samples = samples["page/cold"] + samples["page/warm"]
    counts = sorted({str(s["bytecode"]) for s in page_samples})
    result.notes.append(f"page: modules imported from the precompiled bytecode bundle: {', '.join(counts)}"
                        + ("" if with_bytecode else " (the server built none in time: sources compiled in the browser)"))
    for cache in ("cold", "warm"):
        phases = []
        for label, start, end in BOOT_PHASES:
            spans = [s["marks"][end] - (s["py_ready"] if start == "py_ready" else s["marks"][start])
                     for s in samples[f"page/{cache}"]
                     if end in s["marks"] and (start == "py_ready" and s["py_ready"] is not None or start in s["marks"])]
            if spans:
                phases.append(f"{label} {statistics.median(spans):.0f}")
        result.notes.append(f"page Python after py:ready, {cache} (median ms per phase, performance.mark): "
                            + "; ".join(phases))
    result.versions["chromium"] = browser.version
    return result


def _summary(values: list[float]) -> Summary:
    return Summary.of(values or [float("nan")])


def _mib(samples: list[dict]) -> str:
    values = sorted(s["transferred"] for s in samples)
    return f"{values[len(values) // 2] / 1048576:.2f}"
