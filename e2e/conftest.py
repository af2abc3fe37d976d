"""Playwright fixtures: the real server (``python -m server run``) on a free port with test
hooks on, Debian's chromium, and per-test users so tests never share export state.

Every page created through ``open_tab`` records its requests (any that leaves the server's
origin fails the test), its console errors (any fails the test) and its downloads.
"""
from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CELLHUB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PAGE_READY_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = port or _free_port()
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
    server.proc.terminate()
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> ServerProcess:
    data_dir = tmp_path_factory.mktemp("cellhub") / "data"
    srv = start_server(data_dir)
    yield srv
    stop_server(srv)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@dataclass
class Tab:
    """One page with what it did: requests, console errors and warnings, downloads."""

    page: Any
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    console_warnings: list[str] = field(default_factory=list)
    downloads: list[Any] = field(default_factory=list)

    def status_text(self) -> str:
        return self.page.locator("#export-status").inner_text()


@dataclass
class UserSession:
    """A fresh user with one browser context (its tabs share storage, channel and locks)."""

    server: ServerProcess
    context: Any
    username: str
    tabs: list[Tab] = field(default_factory=list)

    def open_tab(self, path: str = "/") -> Tab:
        page = self.context.new_page()
        tab = Tab(page)
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("download", lambda d: tab.downloads.append(d))

        def on_console(msg):
            if msg.type == "error":
                tab.console_errors.append(msg.text)
            elif msg.type == "warning":
                tab.console_warnings.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: tab.console_errors.append(f"pageerror: {exc}"))
        page.goto(self.server.base_url + path)
        page.wait_for_selector("body[data-ready='true']", timeout=PAGE_READY_TIMEOUT_MS)
        self.tabs.append(tab)
        return tab

    def all_downloads(self) -> list[Any]:
        return [d for tab in self.tabs for d in tab.downloads]

    def cookies(self) -> dict:
        return {c["name"]: c["value"] for c in self.context.cookies()}

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.server.api(method, path, body, cookies=self.cookies())


@pytest.fixture
def user(server, browser) -> UserSession:
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
    session = UserSession(server, context, username)
    yield session
    foreign = [u for tab in session.tabs for u in tab.requests if not u.startswith(server.base_url) and not u.startswith("data:") and not u.startswith("blob:")]
    errors = [e for tab in session.tabs for e in tab.console_errors]
    context.close()
    assert not foreign, f"requests left the server's origin: {foreign}"
    assert not errors, f"console errors: {errors}"
