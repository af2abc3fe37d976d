"""P1: time to interactive of the export page against a bare page, cold and warm cache.

Time to interactive: navigation start (``performance.timeOrigin``) until ``body[data-ready]``
becomes ``true``, stamped in the page by a MutationObserver with ``performance.now()``.
First paint: the ``first-contentful-paint`` entry (the static markup, before Python runs).

Baseline, in the same run: ``testkit/pages/bench/bare.html`` (at ``/test-pages/bench/bare.html``), served by the same server, which boots
the same PyScript and Pyodide, loads the same wheels and imports pydantic, nothing else.
Cold: a new browser context (empty HTTP cache, so also no cached compiled wasm); warm: the
same URL again in that context. The operating system's file cache is warm in both.

The export page boots from the server's memory snapshot (``server.snapshot``, restored by
``static/boot/snapshot-boot.mjs``); the bench waits until the server offers it, so every
"snapshot" sample restores it. The "fallback" variant is the same page in a browser context
whose requests say ``Accept-Encoding: identity``: the server then offers no snapshot (it
serves it zstd or gzip only), so the page takes the full boot, with the precompiled bytecode
bundle (``app.browser.bytecode``) and the wheels requested early, as before issue 22 (the
HTTP cache stays on: request routing would turn it off). The bare page has neither:
it is the runtime as shipped. Where the page's own Python goes is read from its
``performance.mark``s (``app.browser.boot``).

Bytes: the sum of ``transferSize`` over the navigation and every resource entry (0 for what
came from the HTTP cache). Memory: the proportional set size (``Pss`` of
``/proc/<pid>/smaps_rollup``) of Chromium's renderer processes started under this bench
process, after ``n`` tabs of one variant are ready and have settled, minus the same sum
before they opened, divided by ``n`` (a tab of another origin in one browser runs in its own
renderer process; shared pages count by share).
"""
from __future__ import annotations

import os
import re
import statistics
import time
import tomllib
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchResult, Row, Summary, alternate, interpreter_url

PROFILES = {"full": {"runs": 10}, "quick": {"runs": 2}, "tiny": {"runs": 1}}
"""Runs per variant: the interpreter's start alone spreads over seconds on a shared machine,
so the medians need more than a handful of samples."""
READY_TIMEOUT_MS = 180_000
BYTECODE_TIMEOUT_S = 300
TARGET = 1.15
"""Time to interactive of the full boot (fallback) against the bare page."""
SNAPSHOT_TARGETS = {"cold": 0.7, "warm": 0.6}
BYTES_TARGET = 1.3
MEMORY_TARGET = 1.1
MEMORY_TABS = (1, 6)
SETTLE_MS = 3000
BARE = "/test-pages/bench/bare.html"
NO_SNAPSHOT = {"Accept-Encoding": "identity"}
"""A client that takes neither zstd nor gzip is offered no snapshot (``server.snapshot``)."""
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
          boot: document.body.dataset.boot ?? null,
          transferred: res.reduce((s, r) => s + (r.transferSize || 0), nav ? nav.transferSize : 0)};
}"""


def _renderer_pss_kib() -> int:
    """Sum of ``Pss`` (KiB) over the Chromium renderer processes descended from this process."""
    parents: dict[int, int] = {}
    renderers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            if b"--type=renderer" in (entry / "cmdline").read_bytes():
                renderers.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue

    def mine(pid: int) -> bool:
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parents.get(pid, 0)
        return False

    total = 0
    for pid in renderers:
        if not mine(pid):
            continue
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def memory_per_tab(env: Any, user: tuple[str, str], path: str, tabs: int) -> float:
    """MiB of renderer memory per tab of ``path`` with ``tabs`` of them open (see the module doc)."""
    context = env.browser.signed_in_context(env.server, *user)
    try:
        before = _renderer_pss_kib()
        pages = [context.new_page() for _ in range(tabs)]
        for page in pages:
            page.goto(env.server.base_url + path, wait_until="commit")
        for page in pages:
            page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS, state="attached")
        pages[0].wait_for_timeout(SETTLE_MS)
        return (_renderer_pss_kib() - before) / 1024 / tabs
    finally:
        context.close()


def check_bare_page() -> None:
    """Raise ``AssertionError`` unless the bare page uses the export page's PyScript and
    Pyodide (so a version bump cannot silently leave the baseline behind)."""
    index = (ROOT / "index.html").read_text()
    bare = (ROOT / "testkit" / "pages" / "bench" / "bare.html").read_text()
    core = re.search(r'src="(/static/vendor/pyscript/[^"]+/core\.js)"', index)
    assert core and core.group(1) in bare, "bare.html must load the export page's PyScript core.js"
    bare_toml = tomllib.loads((ROOT / "testkit" / "pages" / "bench" / "bare.toml").read_text())
    assert bare_toml["interpreter"] == interpreter_url(), "bare.toml must name the export page's Pyodide"


def wait_for_boot_files(env: Any, user: tuple[str, str], timeout_s: float = BYTECODE_TIMEOUT_S) -> bool:
    """Ask for the export page until its boot manifest names the memory snapshot and the
    bytecode bundle (the first request starts the server's builds); False if they did not
    come within ``timeout_s``."""
    context = env.browser.signed_in_context(env.server, *user)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            html = context.request.get(env.server.base_url + "/").text()
            if (re.search(r'"bytecode": "/bytecode-[0-9a-f]+\.bin"', html)
                    and re.search(r'"snapshot": "/snapshot-[0-9a-f]+\.bin"', html)):
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


VARIANTS = ("snapshot", "fallback", "bare")
"""The export page booted from its memory snapshot, the same page offered none (the full
boot), and the bare page."""


def run(profile: str, env: Any) -> BenchResult:
    """Measure P1 (``profile``: full, quick or tiny) with ``env``'s server and browser."""
    check_bare_page()
    runs = PROFILES[profile]["runs"]
    server, browser = env.server, env.browser
    user = server.new_user()
    with_boot_files = wait_for_boot_files(env, user)
    samples: dict[str, list[dict]] = {f"{v}/{c}": [] for v in VARIANTS for c in ("cold", "warm")}

    def one(variant: str, _run: int) -> None:
        headers = {"extra_http_headers": NO_SNAPSHOT} if variant == "fallback" else {}
        context = browser.signed_in_context(server, *user, **headers)
        try:
            context.add_init_script(READY_JS)
            page = context.new_page()
            url = server.base_url + (BARE if variant == "bare" else "/")
            samples[f"{variant}/cold"].append(_load(page, url))
            samples[f"{variant}/warm"].append(_load(page, url))
        finally:
            context.close()

    # One warm-up of each outside the samples: the server's first answers (thumbnails made
    # once, Python imports) are not what a page load costs.
    for variant in VARIANTS:
        one(variant, -1)
    for key in samples:
        samples[key].clear()
    alternate(list(VARIANTS), runs, one)

    result = BenchResult("P1", "Time to interactive of the export page vs a bare Pyodide page", {
        "export page": "GET / (demo project as ./run seeds it: 12 images of 512x512, signed-in user)",
        "snapshot": "the export page booted from the server's memory snapshot (issue 22)",
        "fallback": "the export page offered no snapshot (Accept-Encoding: identity): the full boot",
        "bare page": BARE + " (same PyScript + Pyodide + wheels, import pydantic)",
        "runs": runs, "cold": "new browser context (empty HTTP cache)", "warm": "same URL again in that context",
        "memory": f"renderer Pss per tab with {' and '.join(map(str, MEMORY_TABS))} tabs, {SETTLE_MS} ms after ready",
    })
    for cache in ("cold", "warm"):
        bare = Summary.of([s["ready"] for s in samples[f"bare/{cache}"]])
        snap = Summary.of([s["ready"] for s in samples[f"snapshot/{cache}"]])
        result.rows.append(Row(f"TTI, {cache} cache, snapshot boot", "ms", snap, bare, "bare page")
                           .judge(max_ratio=SNAPSHOT_TARGETS[cache]))
        full = Summary.of([s["ready"] for s in samples[f"fallback/{cache}"]])
        result.rows.append(Row(f"TTI, {cache} cache, full boot (fallback)", "ms", full, bare, "bare page")
                           .judge(max_ratio=TARGET))
    result.rows.append(Row("bytes transferred, cold, snapshot boot", "MiB",
                           Summary.of([s["transferred"] / 1048576 for s in samples["snapshot/cold"]]),
                           Summary.of([s["transferred"] / 1048576 for s in samples["bare/cold"]]), "bare page")
                       .judge(max_ratio=BYTES_TARGET))
    for tabs in MEMORY_TABS:
        mem = {v: [] for v in ("snapshot", "bare")}
        for _ in range(max(1, runs // 5)):
            for variant in mem:
                mem[variant].append(memory_per_tab(env, user, BARE if variant == "bare" else "/", tabs))
        result.rows.append(Row(f"renderer memory per tab, {tabs} tab{'s' if tabs > 1 else ''}, snapshot boot",
                               "MiB", Summary.of(mem["snapshot"]), Summary.of(mem["bare"]), "bare page")
                           .judge(max_ratio=MEMORY_TARGET))
    for cache in ("cold", "warm"):
        page = _summary([s["fcp"] for s in samples[f"snapshot/{cache}"] if s["fcp"] is not None])
        bare = _summary([s["fcp"] for s in samples[f"bare/{cache}"] if s["fcp"] is not None])
        result.rows.append(Row(f"first contentful paint, {cache}, snapshot boot", "ms", page, bare, "bare page").judge())
    for variant in ("snapshot", "fallback"):
        for cache in ("cold", "warm"):
            for phase, pick in (("interpreter up (py:ready)", lambda s: s["py_ready"]),
                                ("page Python after py:ready", lambda s: s["ready"] - s["py_ready"])):
                page = _summary([pick(s) for s in samples[f"{variant}/{cache}"] if s["py_ready"] is not None])
                bare = _summary([pick(s) for s in samples[f"bare/{cache}"] if s["py_ready"] is not None])
                result.rows.append(Row(f"{phase}, {cache}, {variant}", "ms", page, bare, "bare page").judge())
    for variant in VARIANTS:
        cold = samples[f"{variant}/cold"]
        warm = samples[f"{variant}/warm"]
        result.notes.append(
            f"{variant}: {cold[0]['requests']} requests; bytes over the network cold "
            f"{_mib(cold)} MiB, warm {_mib(warm)} MiB (median transferSize sum)")
    for variant in ("snapshot", "fallback"):
        page_samples = samples[f"{variant}/cold"] + samples[f"{variant}/warm"]
        boots = sorted({str(s["boot"]) for s in page_samples})
        counts = sorted({str(s["bytecode"]) for s in page_samples})
        result.notes.append(f"{variant}: body[data-boot] {', '.join(boots)}; modules imported from the "
                            f"precompiled bytecode bundle: {', '.join(counts)}"
                            + ("" if with_boot_files else " (the server built no snapshot or bundle in time)"))
        for cache in ("cold", "warm"):
            phases = []
            for label, start, end in BOOT_PHASES:
                spans = [s["marks"][end] - (s["py_ready"] if start == "py_ready" else s["marks"][start])
                         for s in samples[f"{variant}/{cache}"]
                         if end in s["marks"] and (start == "py_ready" and s["py_ready"] is not None or start in s["marks"])]
                if spans:
                    phases.append(f"{label} {statistics.median(spans):.0f}")
            result.notes.append(f"{variant}: page Python after py:ready, {cache} (median ms per phase, "
                                "performance.mark): " + "; ".join(phases))
    result.versions["chromium"] = browser.version
    return result


def _summary(values: list[float]) -> Summary:
    return Summary.of(values or [float("nan")])


def _mib(samples: list[dict]) -> str:
    values = sorted(s["transferred"] for s in samples)
    return f"{values[len(values) // 2] / 1048576:.2f}"
