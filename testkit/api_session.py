"""What the service tests' ``Client`` and the cluster tests' ``Session`` share: a signed-in
user's HTTP client (``http``: an ``httpx.Client`` with the server's ``base_url``, the session
cookie and the CSRF header) asking about jobs and opening the event WebSocket."""
from __future__ import annotations

import json
import time

from websockets.sync.client import connect as ws_connect


class JobsOverHttp:
    """Mixin: needs ``self.http``."""

    def job(self, job_id: str) -> dict:
        """The job's JSON (AssertionError unless 200)."""
        r = self.http.get(f"/api/exports/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
        """The job's JSON once its status is one of ``statuses``; AssertionError after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {statuses}: {self.job(job_id)}")

    def websocket(self):
        """``/api/ws`` of the same server, opened with this session's cookie."""
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        url = str(self.http.base_url).rstrip("/").replace("http://", "ws://") + "/api/ws"
        return ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10)


def recv_events(ws, until, timeout: float = 60) -> list[dict]:
    """The events read from the WebSocket ``ws`` (pings skipped) until one satisfies
    ``until``, that one included; AssertionError after ``timeout`` seconds."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message.get("type") == "ping":
            continue
        got.append(message)
        if until(message):
            return got
    raise AssertionError(f"no matching event; got {got}")
