"""Playwright fixtures: the real server (``python -m server run``) on a free port with test
hooks on, Debian's chromium, and per-test users so tests never share export state.

Every page created through ``open_tab`` records its requests (any that leaves the server's
origin fails the test), its console errors (any fails the test, unless the test declared it
with ``allow_console_errors``), its downloads and the WebSocket messages it received.

For the multi-tab scenarios: ``workspace`` (one user whose tabs a module's tests reuse, each
test starting from idle pages), ``RECORDER_JS`` (what a page showed over time: every
``data-status``, status text and progress value, every ``<a download>`` and button click,
with ``Date.now()`` times), the server's view of a job (``job_state``/``wait_for_job``:
status, delivered, files on disk, download requests) and the checks shared by scenarios
(``settle_downloads``, ``assert_downloaded_everywhere``, ``assert_cancelled_everywhere``).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from testkit import CHROMIUM, CHROMIUM_ARGS, free_port, stop_process

ROOT = Path(__file__).resolve().parents[1]
PAGE_READY_TIMEOUT_MS = 90_000


@dataclass
class ServerProcess:
    base_url: str
    data_dir: Path
    proc: subprocess.Popen
    login_url: str
    log_path: Path

    def api(self, method: str, path: str, body: Any = None, cookies: dict | None = None) -> tuple[int, Any]:
        import httpx

        headers = {"X-Requested-With": "cellhub"}
        r = httpx.request(method, self.base_url + path, json=body, headers=headers, cookies=cookies, timeout=30)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text


def start_server(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    env = dict(os.environ, CELLHUB_TEST_HOOKS="1", PYTHONUNBUFFERED="1")
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "run", "--port", str(port), "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    login_url = ""
    while time.monotonic() < deadline:
        text = log_path.read_text()
        m = re.search(r"(http://\S+/login\?token=\S+)", text)
        if m:
            login_url = m.group(1)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{text}")
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
    return ServerProcess(f"http://127.0.0.1:{port}", data_dir, proc, login_url, log_path)


def stop_server(server: ServerProcess) -> None:
    stop_process(server.proc, timeout=20)


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerProcess:
    data_dir = tmp_path_factory.mktemp("cellhub") / "data"
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


CSP_WATCH_JS = """
(() => {
  // Every Content-Security-Policy violation of the document, reported to the test run
  // (window.__cellhubCspViolation is bound by the context) and to the console.
  document.addEventListener('securitypolicyviolation', (e) => {
    const text = `CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'}`
      + ` at ${e.sourceFile || document.location.href}:${e.lineNumber}:${e.columnNumber}`;
    if (window.__cellhubCspViolation) window.__cellhubCspViolation(document.location.href + ' ' + text);
    console.error(text);
  });
})();
"""
CSP_VIOLATIONS: list[str] = []
"""Violations seen by any page of any context since the current test began."""


@pytest.fixture(scope="session")
def browser(browser):
    """pytest-playwright's browser, whose every new context watches for CSP violations
    (``CSP_WATCH_JS``): the whole suite runs under the server's real policy, and any
    violation fails the test that caused it (``fail_on_csp_violations``)."""
    new_context = browser.new_context

    def watched_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        context.expose_function("__cellhubCspViolation", lambda text: CSP_VIOLATIONS.append(text))
        context.add_init_script(CSP_WATCH_JS)
        return context

    browser.new_context = watched_context
    return browser


@pytest.fixture(autouse=True)
def fail_on_csp_violations():
    CSP_VIOLATIONS.clear()
    yield
    seen = list(CSP_VIOLATIONS)
    CSP_VIOLATIONS.clear()
    assert not seen, f"Content-Security-Policy violations: {seen}"


@dataclass
class Tab:
    """One page with what it did: requests, console errors and warnings, downloads."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    downloads: list[Any] = field(default_factory=list)
    sent: list[tuple[str, str]] = field(default_factory=list)
    """``(method, url)`` of every request, in order (``requests`` keeps the URLs alone)."""
    ws_frames: list[str] = field(default_factory=list)
    """Every WebSocket message the page received (text frames), in order."""
    expected_errors: list[str] = field(default_factory=list)
    """Regexes of console errors the test expects (``allow_console_errors``)."""
    crashed: bool = False
    """Its renderer process crashed (Playwright's ``crash`` event): the test that saw it fails,
    and the module's workspace closes the tab instead of handing it to the next test."""

    def unexpected_errors(self) -> list[str]:
        return [e for e in self.console_errors if not any(re.search(p, e) for p in self.expected_errors)]

    def status_text(self) -> str:
        return self.page.locator("#export-status").inner_text()

    # ``record`` and the helpers built on it read what ``RECORDER_JS`` (an init script of the
    # context, see ``Workspace``) saw in the current document; a reload starts a fresh record.
    def status(self) -> str:
        """The machine state the page shows now (``body[data-status]``)."""
        return self.page.locator("body").get_attribute("data-status") or ""

    def job_id(self) -> str:
        return self.page.locator("body").get_attribute("data-job-id") or ""

    def project_id(self) -> str:
        return self.page.locator("body").get_attribute("data-project-id") or ""

    def record(self) -> dict:
        """``{statuses, texts, progress, downloads, clicks}``: lists of ``{v|href|id, t}``."""
        return self.page.evaluate("() => window.__cellhubRec")

    def status_history(self) -> list[str]:
        """Every distinct ``data-status`` value this document had, in order."""
        return [entry["v"] for entry in self.record()["statuses"]]

    def download_starts(self) -> list[dict]:
        """``[{href, t}]``: each ``<a download>`` the page clicked, ``t`` in ms since the epoch."""
        return self.record()["downloads"]

    def reset_record(self) -> None:
        """Forget what was recorded so far (the current status stays as the first entry)."""
        self.page.evaluate("""() => { const r = window.__cellhubRec;
            for (const k of ['statuses', 'texts', 'progress', 'downloads', 'clicks']) r[k].length = 0;
            r.statuses.push({v: document.body.getAttribute('data-status'), t: Date.now()}); }""")

    def storage(self, key: str) -> str | None:
        return self.page.evaluate("(k) => localStorage.getItem(k)", key)


BOOT_CRASHES: list[str] = []
"""The tabs ``UserSession.open_tabs`` opened again because their renderer crashed at boot."""


def _close_quietly(page) -> None:
    try:
        page.close()
    except Exception:  # noqa: BLE001 - a crashed page may refuse even this
        pass


def pytest_terminal_summary(terminalreporter) -> None:
    if BOOT_CRASHES:
        terminalreporter.write_line(
            f"Chromium renderer crashes while a new tab booted, tab opened again: {len(BOOT_CRASHES)}", yellow=True)
        for crash in BOOT_CRASHES:
            terminalreporter.write_line(f"  {crash}", yellow=True)


@dataclass
class UserSession:
    """A fresh user with one browser context (its tabs share storage, channel and locks)."""

    server: ServerProcess
    context: Any
    username: str
    tabs: list[Tab] = field(default_factory=list)

    def open_tab(self, path: str = "/", boot: str = "snapshot") -> Tab:
        return self.open_tabs(1, path, boot)[0]

    def open_tabs(self, n: int, path: str = "/", boot: str = "snapshot") -> list[Tab]:
        """Open ``n`` tabs at once (their runtimes boot side by side) and wait until each is
        ready, booted the ``boot`` way (``wait_ready``).

        A new tab whose renderer process crashes before its page is ready is closed and opened
        again, once per tab (``BOOT_CRASHES`` counts them; the run's summary reports them): a
        fresh tab holds nothing of the test yet, and Chromium's renderer has been seen to crash
        about once in several hundred boots on the 2-core machines, whatever the page did. A
        second crash of the same tab, or any crash after the page is ready, fails the test."""
        tabs = [self.start_tab(path) for _ in range(n)]
        for i, tab in enumerate(tabs):
            try:
                wait_ready([tab], boot)
            except Exception as failure:
                if not (tab.crashed or "Page crashed" in str(failure)):
                    raise
                test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
                BOOT_CRASHES.append(f"{test}: {path}, {len(self.tabs) - 1} other tabs of its user open")
                self.tabs.remove(tab)
                _close_quietly(tab.page)
                tabs[i] = wait_ready([self.start_tab(path)], boot)[0]
        return tabs

    def start_tab(self, path: str = "/") -> Tab:
        """Open a tab and start loading ``path`` without waiting for the page to be ready
        (see ``wait_ready``)."""
        tab = self._new_tab()
        tab.page.goto(self.server.base_url + path, wait_until="commit")
        self.tabs.append(tab)
        return tab

    def _new_tab(self) -> Tab:
        page = self.context.new_page()
        tab = Tab(page)
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("request", lambda r: tab.sent.append((r.method, r.url)))
        page.on("download", lambda d: tab.downloads.append(d))
        page.on("crash", lambda _page: setattr(tab, "crashed", True))
        page.on("websocket", lambda w: w.on("framereceived", lambda payload: tab.ws_frames.append(str(payload))))

        def on_console(msg):
            if msg.type == "error":
                tab.console_errors.append(msg.text)
            elif msg.type == "warning":
                tab.console_warnings.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.console_errors.append(f"pageerror: {exc}"))
        return tab

    def all_downloads(self) -> list[Any]:
        return [d for tab in self.tabs for d in tab.downloads]

    def cookies(self) -> dict:
        return {c["name"]: c["value"] for c in self.context.cookies()}

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.server.api(method, path, body, cookies=self.cookies())


def new_user_session(server: ServerProcess, browser) -> UserSession:
    """A fresh user on ``server`` with one signed-in browser context; the test hooks reset
    (no hold, no checkpoint delay). Pair with ``close_user_session``."""
    username = f"u{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    status, body = server.api("POST", "/api/test/users", {"username": username, "password": password})
    assert status == 200, body
    status, body = server.api("POST", "/api/test/hooks", {"hold_before_complete": False, "delay_per_checkpoint_ms": 0})
    assert status == 200, body
    context = browser.new_context(accept_downloads=True)
    r = context.request.post(
        server.base_url + "/api/session",
        data=json.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json", "X-Requested-With": "cellhub"},
    )
    assert r.ok, r.text()
    return UserSession(server, context, username)


def close_user_session(session: UserSession) -> None:
    """Close the context; AssertionError if any tab sent a request off the server's origin or
    logged a console error."""
    base = session.server.base_url
    foreign = [u for tab in session.tabs for u in tab.requests if not u.startswith((base, "data:", "blob:"))]
    session.context.close()  # after this, no console event can arrive any more
    errors = [e for tab in session.tabs for e in tab.unexpected_errors()]
    assert not foreign, f"requests left the server's origin: {foreign}"
    assert not errors, f"console errors: {errors}"


@pytest.fixture
def user(server, browser) -> UserSession:
    session = new_user_session(server, browser)
    yield session
    close_user_session(session)


BOOT = "snapshot"
"""How every page of the suite boots (``body[data-boot]``, ``static/boot/snapshot-boot.mjs``):
from the memory snapshot the set-up built; a test of the other path says so."""


def wait_ready(tabs: list[Tab], boot: str = BOOT) -> list[Tab]:
    """Wait until every tab's page says ``body[data-ready=true]``; AssertionError unless it
    booted the ``boot`` way. Returns ``tabs``."""
    for tab in tabs:
        tab.page.wait_for_selector("body[data-ready='true']", timeout=PAGE_READY_TIMEOUT_MS)
        booted = tab.page.evaluate("() => [document.body.dataset.boot, document.body.dataset.bootReason]")
        assert booted[0] == boot, f"page booted {booted[0]} ({booted[1]}), expected {boot}"
    return tabs


def reload_tab(tab: Tab) -> Tab:
    """Reload the tab's page and wait until it is ready again (its record starts afresh)."""
    tab.page.reload(wait_until="commit")
    return wait_ready([tab])[0]


RECORDER_JS = """
(() => {
  // What a tab showed over time, for assertions about things that must never happen:
  // every value body[data-status] took (a MutationObserver with old values, so a value held
  // only between two renders of one task is not lost), the #export-status texts and
  // #progress-label values seen, every <a download> clicked and every button clicked, all
  // with Date.now() times (one clock for every tab of the browser).
  const rec = {statuses: [], texts: [], progress: [], downloads: [], clicks: []};
  window.__cellhubRec = rec;
  const pushNew = (list, value) => {
    if (value == null) return;
    const last = list[list.length - 1];
    if (!last || last.v !== value) list.push({v: value, t: Date.now()});
  };
  const sample = () => {
    const text = document.getElementById('export-status');
    const label = document.getElementById('progress-label');
    if (text) pushNew(rec.texts, text.textContent);
    if (label) pushNew(rec.progress, label.textContent);
  };
  new MutationObserver((records) => {
    const mine = records.filter((r) => r.type === 'attributes' && r.target === document.body
                                       && r.attributeName === 'data-status');
    mine.forEach((r, i) => {
      pushNew(rec.statuses, r.oldValue);
      pushNew(rec.statuses, i + 1 < mine.length ? mine[i + 1].oldValue : document.body.getAttribute('data-status'));
    });
    sample();
  }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true,
                        attributeOldValue: true, attributeFilter: ['data-status']});
  const click = HTMLAnchorElement.prototype.click;
  HTMLAnchorElement.prototype.click = function () {
    if (this.hasAttribute('download')) rec.downloads.push({href: this.href, t: Date.now()});
    return click.apply(this, arguments);
  };
  document.addEventListener('click', (e) => {
    const b = e.target && e.target.closest && e.target.closest('button');
    if (b) rec.clicks.push({id: b.id, t: Date.now(), hidden: b.hidden, disabled: b.disabled});
  }, true);
})();
"""


def job_state(server: ServerProcess, job_id: str) -> dict:
    """The test hooks' view of a job: ``{held, status, delivered, archive_exists,
    partial_exists, sha256, download_requests, downloads_served}``."""
    status, body = server.api("GET", f"/api/test/jobs/{job_id}")
    assert status == 200, body
    return body


def wait_for_job(server: ServerProcess, job_id: str, predicate, timeout_s: float = 60.0) -> dict:
    """Poll the job's test-hook state until ``predicate(state)`` holds; returns that state
    (AssertionError with the last state after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    state = job_state(server, job_id)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached the expected state; last: {state}")
        time.sleep(0.02)
        state = job_state(server, job_id)
    return state


def set_hooks(server: ServerProcess, **controls: Any) -> None:
    """POST /api/test/hooks (``hold_before_complete``, ``delay_per_checkpoint_ms``)."""
    status, body = server.api("POST", "/api/test/hooks", controls)
    assert status == 200, body


def reset_hooks(server: ServerProcess) -> None:
    """No hold, no delay, every held job released, WebSockets allowed (POST /api/test/reset)."""
    status, body = server.api("POST", "/api/test/reset")
    assert status == 200, body


def allow_console_errors(tabs: list[Tab], pattern: str) -> list[str]:
    """Declare the console errors matching the regex ``pattern`` expected in ``tabs`` for the
    rest of the test (e.g. the browser's own log line for a 409 answer), so the final check
    still fails on any other error. Returns the matching errors logged so far."""
    for tab in tabs:
        tab.expected_errors.append(pattern)
    return [e for tab in tabs for e in tab.console_errors if re.search(pattern, e)]


def persist_key(project_id: int | str) -> str:
    """localStorage key of the project's persisted export (C5)."""
    return f"cellhub.export.v1.{project_id}"


TERMINAL_PAGE_STATES = ("cancelled", "downloaded", "failed")
DOWNLOAD_WAIT_S = 30.0
QUIET_MS = 1000
"""After a scenario's last expected event: how long nothing more may happen (a second
download, a status change) before the test concludes that nothing will."""


def wait_status(tab: Tab, status: str, timeout_ms: int = 30_000) -> None:
    """Wait until the tab's ``body[data-status]`` is ``status``."""
    from playwright.sync_api import expect

    expect(tab.page.locator("body")).to_have_attribute("data-status", status, timeout=timeout_ms)


def wait_following(tabs: list[Tab], job_id: str, statuses: tuple[str, ...] = ("running",),
                   timeout_ms: int = 30_000) -> None:
    """Wait until every tab shows ``job_id`` in one of ``statuses``."""
    for tab in tabs:
        tab.page.wait_for_function(
            "([job, states]) => document.body.dataset.jobId === job && states.includes(document.body.dataset.status)",
            arg=[job_id, list(statuses)], timeout=timeout_ms)


def wait_progress_above(tab: Tab, percent: int, timeout_ms: int = 30_000) -> int:
    """Wait until ``#progress-label`` shows more than ``percent``; returns the value shown."""
    tab.page.wait_for_function(
        "(p) => parseInt(document.getElementById('progress-label').textContent) > p", arg=percent, timeout=timeout_ms)
    return int(tab.page.locator("#progress-label").inner_text().rstrip("%"))


def job_downloads(tab: Tab, job_id: str) -> list[Any]:
    """The browser downloads of ``job_id`` this tab received."""
    return [d for d in tab.downloads if f"/api/exports/{job_id}/download" in d.url]


def settle_downloads(tabs: list[Tab], server: ServerProcess, job_id: str, expected: int) -> list[Any]:
    """Wait until ``expected`` downloads of the job arrived (summed over ``tabs``), then
    ``QUIET_MS`` more so that a further one would show, and check the count in every
    place: the browser's download events, the page's own ``<a download>`` clicks (open
    tabs with ``RECORDER_JS``) and the server's download requests, answers and
    ``delivered`` flag. Returns the downloads."""
    anchor = next(t for t in tabs if not t.page.is_closed())
    deadline = time.monotonic() + DOWNLOAD_WAIT_S
    while sum(len(job_downloads(t, job_id)) for t in tabs) < expected and time.monotonic() < deadline:
        anchor.page.wait_for_timeout(50)  # lets Playwright deliver the download events
    anchor.page.wait_for_timeout(QUIET_MS)
    downloads = [d for t in tabs for d in job_downloads(t, job_id)]
    per_tab = [len(job_downloads(t, job_id)) for t in tabs]
    assert len(downloads) == expected, f"browser downloads per tab {per_tab}, expected {expected} in all"
    clicks = [d for t in tabs if not t.page.is_closed() for d in t.download_starts()
              if f"/api/exports/{job_id}/download" in d["href"]]
    assert len(clicks) == expected, f"download links clicked by the pages: {clicks}"
    state = job_state(server, job_id)
    assert state["download_requests"] == expected, state
    assert state["downloads_served"] == expected, state
    assert state["delivered"] is (expected > 0), state
    return downloads


class Workspace:
    """One user whose tabs are reused by the tests of a module (a page boots in seconds, so
    scenarios that allow it share tabs). ``begin()`` brings every open tab back to an idle
    page with a fresh record and the server's test hooks reset; ``end()`` fails the test on
    console errors or off-origin requests of that test, as the ``user`` fixture does."""

    def __init__(self, server: ServerProcess, browser) -> None:
        self.server = server
        self.session = new_user_session(server, browser)
        self.session.context.add_init_script(RECORDER_JS)

    def open_tabs(self) -> list[Tab]:
        return [t for t in self.session.tabs if not t.page.is_closed() and not t.crashed]

    def _close_crashed_tabs(self) -> None:
        # One crashed renderer fails its own test; the tests after it get fresh tabs instead
        # of failing in their set-up on the dead one.
        for tab in self.session.tabs:
            if tab.crashed and not tab.page.is_closed():
                _close_quietly(tab.page)

    def tabs(self, n: int) -> list[Tab]:
        """``n`` open tabs (opening the missing ones side by side), all idle."""
        missing = n - len(self.open_tabs())
        if missing > 0:
            self.session.open_tabs(missing)
        return self.open_tabs()[:n]

    def new_tab(self) -> Tab:
        """Open one more tab and wait until it is ready (whatever the export is doing)."""
        return self.session.open_tab()

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.session.api(method, path, body)

    def project_id(self) -> int:
        status, projects = self.api("GET", "/api/projects")
        assert status == 200, projects
        return int(projects[0]["id"])

    def jobs(self) -> list[dict]:
        """The user's export history of the project, newest first."""
        status, jobs = self.api("GET", f"/api/projects/{self.project_id()}/exports")
        assert status == 200, jobs
        return jobs

    def begin(self) -> None:
        reset_hooks(self.server)
        self._close_crashed_tabs()
        for job in self.jobs():  # whatever an earlier, failed test left running
            if job["status"] in ("queued", "running"):
                self.api("POST", f"/api/exports/{job['id']}/cancel")
        for tab in self.open_tabs():
            if tab.status() == "idle":
                continue
            try:
                tab.page.wait_for_function(
                    "(s) => s.includes(document.body.dataset.status)",
                    arg=["idle", *TERMINAL_PAGE_STATES, "completed", "undelivered"], timeout=10_000)
                if tab.status() != "idle":
                    tab.page.click("#dismiss-button", timeout=5_000)
                wait_status(tab, "idle", timeout_ms=5_000)
            except Exception:  # noqa: BLE001 - a stuck page is reloaded rather than trusted
                reload_tab(tab)
                wait_status(tab, "idle", timeout_ms=10_000)
        for tab in self.open_tabs():
            tab.reset_record()
            tab.console_errors.clear()
            tab.console_warnings.clear()
            tab.requests.clear()
            tab.sent.clear()

    def end(self) -> None:
        reset_hooks(self.server)
        base = self.server.base_url
        tabs = self.session.tabs
        crashed = [i for i, t in enumerate(tabs) if t.crashed and not t.page.is_closed()]
        self._close_crashed_tabs()
        assert not crashed, f"the renderer of tab(s) {crashed} crashed"
        open_tabs = self.open_tabs()
        if open_tabs:
            open_tabs[0].page.wait_for_timeout(200)  # let console events already sent arrive
        foreign = [u for t in tabs for u in t.requests if not u.startswith((base, "data:", "blob:"))]
        errors = [e for t in tabs for e in t.unexpected_errors()]
        for t in tabs:
            t.console_errors.clear()
            t.expected_errors.clear()
        assert not foreign, f"requests left the server's origin: {foreign}"
        assert not errors, f"console errors: {errors}"

    def close(self) -> None:
        self.session.context.close()


@pytest.fixture(scope="module")
def workspace_pool(server, browser) -> Workspace:
    pool = Workspace(server, browser)
    yield pool
    pool.close()


@pytest.fixture
def workspace(workspace_pool) -> Workspace:
    """The module's ``Workspace``, made ready for this test and checked after it."""
    workspace_pool.begin()
    yield workspace_pool
    workspace_pool.end()


def mark_key(kind: str, job_id: str) -> str:
    """localStorage key of a job's C1/C4 mark (``kind``: cancelled or downloaded)."""
    return f"cellhub.export.v1.{kind}.{job_id}"


def saved_export(tab: Tab, project_id: int | str) -> dict | None:
    """The project's persisted export record (C5) as the tab reads it, or None."""
    raw = tab.storage(persist_key(project_id))
    return json.loads(raw) if raw is not None else None


def assert_downloaded_everywhere(server: ServerProcess, tabs: list[Tab], job_id: str) -> Any:
    """Exactly one download of the job over ``tabs`` and on the server (``settle_downloads``);
    the server's job completed and delivered with the very archive the browser saved; every
    open tab shows "downloaded": the tab that downloaded says "Downloaded.", the others that
    another tab did; storage keeps the job as delivered with the downloaded mark (C4, C5).
    Returns the download."""
    (download,) = settle_downloads(tabs, server, job_id, expected=1)
    state = job_state(server, job_id)
    assert state["status"] == "completed" and state["archive_exists"] and not state["partial_exists"], state
    with open(download.path(), "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == state["sha256"]
    open_tabs = [t for t in tabs if not t.page.is_closed()]
    for tab in open_tabs:
        assert tab.status() == "downloaded", tab.status_history()
        mine = any(d is download for d in tab.downloads)
        expected = "Downloaded." if mine else "Downloaded. downloaded in another tab"
        assert tab.status_text() == expected, (tab.status_text(), tab.status_history())
        assert not {"cancelling", "cancelled", "failed"} & set(tab.status_history()), tab.status_history()
    project_id = open_tabs[0].project_id()
    saved = saved_export(open_tabs[0], project_id)
    assert saved is not None and saved["job"]["id"] == job_id, saved
    assert saved["job"]["status"] == "completed" and saved["job"]["delivered"] is True, saved
    assert open_tabs[0].storage(mark_key("downloaded", job_id)) is not None
    return download


def assert_cancelled_everywhere(server: ServerProcess, tabs: list[Tab], job_id: str) -> None:
    """No download of the job anywhere (``settle_downloads``); the server's job cancelled,
    never delivered, with neither archive nor partial file; every tab shows "Export
    cancelled.", never showed downloading, offers no Download button; storage holds no
    persisted export (C5) but the cancelled mark (C1)."""
    settle_downloads(tabs, server, job_id, expected=0)
    state = wait_for_job(server, job_id, lambda s: not s["archive_exists"] and not s["partial_exists"])
    assert state["status"] == "cancelled" and state["delivered"] is False, state
    for tab in tabs:
        record = tab.record()
        statuses = [e["v"] for e in record["statuses"]]
        assert not {"downloading", "downloaded"} & set(statuses), statuses
        assert not any("Download" in e["v"] for e in record["texts"]), record["texts"]
        assert tab.status() == "cancelled" and tab.status_text() == "Export cancelled.", statuses
        assert tab.page.locator("#download-button").is_hidden()
        assert tab.storage(persist_key(tab.project_id())) is None
    assert tabs[0].storage(mark_key("cancelled", job_id)) is not None
