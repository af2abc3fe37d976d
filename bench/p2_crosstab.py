"""P2: cross-tab propagation of a cancel, with 3 and 6 tabs of one user and project.

A trial: tab A (a different tab each trial) starts an export from its page; the server holds
the job as running (test hook ``hold_before_complete``); once every tab shows ``running``,
tab A's cancel button is clicked by a script that first stamps ``Date.now()``. Each other
tab stamps ``Date.now()`` in a MutationObserver when its ``body[data-status]`` first becomes
``cancelling`` or ``cancelled``. All tabs run in one browser on one machine, so they share
the clock. Latency of a trial = the last of the other tabs (``until tabs B and C show it``);
per-tab latencies are reported too. Before the next trial every tab must show ``cancelled``.

Baseline, same tabs, same run: a bare ``BroadcastChannel`` message from tab A to the others,
stamped the same way (the floor any cross-tab protocol pays).
"""
from __future__ import annotations

from typing import Any

from bench.common import BenchResult, Row, Summary

PROFILES = {"full": {"trials": 50, "tabs": (3, 6)}, "quick": {"trials": 5, "tabs": (3, 6)},
            "tiny": {"trials": 2, "tabs": (3,)}}
TARGET_P95_MS = 50.0
READY_TIMEOUT_MS = 300_000
STEP_TIMEOUT_MS = 60_000
CANCEL_STATES = ("cancelling", "cancelled")

OBSERVER_JS = """
(() => {
  // First Date.now() at which body[data-status] took each value since the last reset; a
  // value held only inside one task is caught through the records' old values.
  window.__benchSeen = {};
  window.__benchReset = () => { window.__benchSeen = {}; };
  new MutationObserver((records) => {
    const t = Date.now();
    const mine = records.filter((r) => r.target === document.body && r.attributeName === 'data-status');
    mine.forEach((r, i) => {
      const v = i + 1 < mine.length ? mine[i + 1].oldValue : document.body.getAttribute('data-status');
      if (v != null && !(v in window.__benchSeen)) window.__benchSeen[v] = t;
    });
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-status']});
})();
"""

CLICK_CANCEL_JS = """() => {
  const t = Date.now();
  document.getElementById('cancel-button').click();
  return t;
}"""

SEEN_CANCEL_JS = """() => {
  const s = window.__benchSeen, ts = ['cancelling', 'cancelled'].filter((k) => k in s).map((k) => s[k]);
  return ts.length ? Math.min(...ts) : null;
}"""

RAW_LISTEN_JS = """() => {
  window.__raw && window.__raw.close();
  window.__raw = new BroadcastChannel('cellhub-bench-raw');
  window.__rawSeen = null;
  window.__raw.onmessage = () => { window.__rawSeen = Date.now(); };
}"""

RAW_SEND_JS = """() => { const t = Date.now(); window.__raw.postMessage({t}); return t; }"""


def _trial(tabs: list[Any], a: int) -> tuple[list[float], float]:
    sender = tabs[a]
    sender.wait_for_selector("#export-button:enabled", timeout=STEP_TIMEOUT_MS)
    sender.click("#export-button")
    for page in tabs:
        page.wait_for_selector("body[data-status='running']", timeout=STEP_TIMEOUT_MS, state="attached")
    sender.wait_for_selector("#cancel-button:visible", timeout=STEP_TIMEOUT_MS)
    for page in tabs:
        page.evaluate("() => window.__benchReset()")
    t0 = sender.evaluate(CLICK_CANCEL_JS)
    per_tab = []
    for i, page in enumerate(tabs):
        handle = page.wait_for_function(SEEN_CANCEL_JS, timeout=STEP_TIMEOUT_MS)
        latency = float(handle.json_value()) - t0
        if i != a:
            per_tab.append(latency)
        else:
            local = latency
    for page in tabs:
        page.wait_for_selector("body[data-status='cancelled']", timeout=STEP_TIMEOUT_MS, state="attached")
    return per_tab, local


def _raw(tabs: list[Any], a: int) -> float:
    for page in tabs:
        page.evaluate(RAW_LISTEN_JS)
    t0 = tabs[a].evaluate(RAW_SEND_JS)
    seen = []
    for i, page in enumerate(tabs):
        if i != a:
            seen.append(float(page.wait_for_function("() => window.__rawSeen", timeout=STEP_TIMEOUT_MS).json_value()))
    return max(seen) - t0


def run(profile: str, env: Any) -> BenchResult:
    """Measure P2 (``profile``: full, quick or tiny) with ``env``'s server and browser; the
    server's hold hook is on for the duration and off afterwards."""
    params = PROFILES[profile]
    server, browser = env.server, env.browser
    result = BenchResult("P2", "Cross-tab propagation of a cancel (click in tab A until the other tabs show it)", {
        "tabs": ", ".join(map(str, params["tabs"])), "trials per tab count": params["trials"],
        "project": "demo project (12 images 512x512), default options (COCO)",
        "server": "job held as running by the test hook hold_before_complete until cancelled",
        "clock": "Date.now() in every tab (one browser, one machine clock; 1 ms resolution)",
    })
    server.hooks(hold_before_complete=True, delay_per_checkpoint_ms=0)
    try:
        for n in params["tabs"]:
            user = server.new_user()
            context = browser.signed_in_context(server, *user, accept_downloads=True)
            try:
                context.add_init_script(OBSERVER_JS)
                tabs = [context.new_page() for _ in range(n)]
                for page in tabs:
                    page.goto(server.base_url + "/", wait_until="commit")
                for page in tabs:
                    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS, state="attached")
                trial_max, per_tab, local, raw = [], [], [], []
                for k in range(params["trials"]):
                    others, mine = _trial(tabs, k % n)
                    trial_max.append(max(others))
                    per_tab.extend(others)
                    local.append(mine)
                    raw.append(_raw(tabs, k % n))
                base = Summary.of(raw)
                result.rows.append(Row(f"{n} tabs: until all other tabs show it", "ms", Summary.of(trial_max), base,
                                       "bare BroadcastChannel", stat="p95").judge(below=TARGET_P95_MS))
                result.rows.append(Row(f"{n} tabs: per other tab", "ms", Summary.of(per_tab), stat="p95").judge())
                result.rows.append(Row(f"{n} tabs: clicking tab itself", "ms", Summary.of(local), stat="p95").judge())
            finally:
                context.close()
    finally:
        server.hooks(hold_before_complete=False)
    result.versions["chromium"] = browser.version
    return result
