"""The real server in a child process and Debian's Chromium through Playwright, as the
e2e suite runs them (``e2e/conftest.py``): same executable, same flags, test hooks on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import httpx

from bench.common import ROOT
from testkit import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: F401 - re-exported for the benchmarks

HEADERS = {"X-Requested-With": "cellhub"}


@dataclass
class Server:
    """A running ``python -m bench.serve`` child: ``base_url``, its data dir and log."""

    base_url: str
    data_dir: Path
    proc: subprocess.Popen
    log_path: Path

    def api(self, method: str, path: str, body: Any = None, cookies: Optional[dict] = None) -> tuple[int, Any]:
        """One JSON request; returns ``(status, parsed body or text)``."""
        r = httpx.request(method, self.base_url + path, json=body, headers=HEADERS, cookies=cookies, timeout=60)
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def new_user(self) -> tuple[str, str]:
        """A fresh user (test hook); returns ``(username, password)``."""
        name, password = f"b{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        status, body = self.api("POST", "/api/test/users", {"username": name, "password": password})
        if status != 200:
            raise RuntimeError(f"cannot add a user: {status} {body}")
        return name, password

    def hooks(self, **controls: Any) -> None:
        status, body = self.api("POST", "/api/test/hooks", controls)
        if status != 200:
            raise RuntimeError(f"hooks: {status} {body}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(data_dir: Path, workers: Optional[int] = None, demo_images: Optional[int] = None,
                 demo_size: Optional[int] = None, timeout_s: float = 180, extra: Optional[list[str]] = None) -> Server:
    """Start the service on a free port over ``data_dir`` with test hooks on; waits until it
    answers. ``extra``: more options of ``bench.serve``. Raises ``RuntimeError`` (with the
    log) if it exits or does not answer in time."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir.parent / f"server-{port}.log"
    cmd = [sys.executable, "-m", "bench.serve", "--port", str(port), "--data-dir", str(data_dir)]
    for flag, value in (("--workers", workers), ("--demo-images", demo_images), ("--demo-size", demo_size)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd += extra or []
    env = dict(os.environ, CELLHUB_TEST_HOOKS="1", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(base + "/signin", timeout=2).status_code == 200:
                return Server(base, data_dir, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{log_path.read_text()}")


class Browser:
    """Playwright's sync API driving Debian's Chromium (headless)."""

    def __init__(self) -> None:
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        self.version = self.browser.version

    def signed_in_context(self, server: Server, username: str, password: str, **kwargs: Any):
        """A new context (its own cache and storage) with the user's session cookie; the
        sign-in goes through the context's request API, so it warms no page cache."""
        context = self.browser.new_context(**kwargs)
        r = context.request.post(server.base_url + "/api/session", data=json.dumps({"username": username, "password": password}),
                                 headers={"Content-Type": "application/json", **HEADERS})
        if not r.ok:
            raise RuntimeError(f"sign-in failed: {r.status} {r.text()}")
        return context

    def close(self) -> None:
        try:
            self.browser.close()
        finally:
            self._pw.stop()


class Env:
    """Lazily started shared resources of one bench run: a scratch dir, the default server
    (demo project as ``./run`` seeds it, 2 workers) and the browser. ``close()`` stops them."""

    def __init__(self, scratch: Path, pyodide: bool = True) -> None:
        self.scratch = scratch
        self.pyodide = pyodide  # P3: also run the store workload in the browser
        self._server: Optional[Server] = None
        self._browser: Optional[Browser] = None

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = start_server(self.scratch / "server" / "data")
        return self._server

    @property
    def browser(self) -> Browser:
        if self._browser is None:
            self._browser = Browser()
        return self._browser

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if self._server is not None:
            self._server.stop()
            self._server = None
