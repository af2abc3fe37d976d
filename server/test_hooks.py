"""Test-only routes, mounted only when ``CELLHUB_TEST_HOOKS=1`` (never by the run command).

- ``POST /api/test/hooks`` ``{hold_before_complete, delay_per_checkpoint_ms}``: set the controls.
- ``GET /api/test/jobs/{id}``: ``{held, status, delivered, archive_exists, partial_exists, sha256,
  download_requests, downloads_served}`` for races, disk checks and download counts.
- ``POST /api/test/users`` ``{username, password}``: add a user (isolates tests).
- ``POST /api/test/jobs/{id}/release``: let a held job go on to its completion CAS.
- ``POST /api/test/ws/drop``: close every WebSocket connection.
- ``POST /api/test/ws/block`` ``{blocked}``: refuse new WebSocket connections.
- ``/test-pages/...``: the test and benchmark pages of ``testkit/pages/`` (the core trace
  page, the P1 baseline page, the P3 Pyodide runner).
- ``POST /api/test/reset``: no hold, no delay, every held job released, WebSockets allowed
  (what a test's teardown calls so a failed test cannot leave a worker held).

``held`` stays true for a job cancelled while held (its hold is never released).
The job state also counts the requests to ``GET /api/exports/{id}/download`` that reached
the server (``download_requests``) and those answered 200 or 206 (``downloads_served``), counted
by a small ASGI middleware, so e2e tests can count downloads on the server's side too.
"""
from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter

from fastapi import Body, FastAPI

from server.events import Hub
from server.jobs import Runner, TestHooks


TEST_PAGES = "/test-pages"
"""Where the test and benchmark pages (``testkit/pages/``) are served, with the hooks only."""
_DOWNLOAD_PATH = re.compile(r"^/api/exports/([^/]+)/download$")


class DownloadCounter:
    """ASGI middleware: counts download requests per job id and how many were answered 200 or 206."""

    def __init__(self, app, counts: dict) -> None:
        self.app = app
        self.counts = counts  # {"requests": Counter, "served": Counter, "lock": Lock}

    async def __call__(self, scope, receive, send):
        match = _DOWNLOAD_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        job_id = match.group(1)
        with self.counts["lock"]:
            self.counts["requests"][job_id] += 1

        async def counting_send(message):
            if message["type"] == "http.response.start" and message["status"] in (200, 206):
                with self.counts["lock"]:
                    self.counts["served"][job_id] += 1
            await send(message)

        return await self.app(scope, receive, counting_send)


def add_test_routes(app: FastAPI, hooks: TestHooks, hub: Hub, runner: Runner) -> None:
    from server.page_assets import ROOT, VersionedStatic

    counts = {"requests": Counter(), "served": Counter(), "lock": threading.Lock()}
    app.add_middleware(DownloadCounter, counts=counts)
    app.mount(TEST_PAGES, VersionedStatic(directory=ROOT / "testkit" / "pages"), name="test-pages")

    @app.post("/api/test/hooks")
    def set_hooks(body: dict = Body(...)):
        if "hold_before_complete" in body:
            hooks.hold_before_complete = bool(body["hold_before_complete"])
        if "delay_per_checkpoint_ms" in body:
            hooks.delay_per_checkpoint_ms = float(body["delay_per_checkpoint_ms"])
        return {"hold_before_complete": hooks.hold_before_complete, "delay_per_checkpoint_ms": hooks.delay_per_checkpoint_ms}

    @app.get("/api/test/jobs/{job_id}")
    def job_state(job_id: str):
        row = runner.store.get_row(job_id)
        archive = runner.store.archive_path(job_id)
        return {
            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest() if archive.exists() else None,
            "held": hooks.is_held(job_id),
            "status": row["status"] if row else None,
            "delivered": bool(row["delivered"]) if row else None,
            "archive_exists": runner.store.archive_path(job_id).exists(),
            "partial_exists": runner.store.partial_path(job_id).exists(),
            "download_requests": counts["requests"][job_id],
            "downloads_served": counts["served"][job_id],
        }

    @app.post("/api/test/users")
    def add_user(body: dict = Body(...)):
        from server import auth

        user_id = auth.add_user(app.state.db, str(body["username"]), str(body["password"]))
        return {"id": user_id}

    @app.post("/api/test/jobs/{job_id}/release")
    def release(job_id: str):
        return {"released": hooks.release(job_id)}

    @app.post("/api/test/ws/drop")
    async def drop():
        return {"dropped": await hub.drop_all()}

    @app.post("/api/test/ws/block")
    def block(body: dict = Body(...)):
        app.state.ws_blocked = bool(body.get("blocked"))
        return {"blocked": app.state.ws_blocked}

    @app.post("/api/test/reset")
    def reset():
        hooks.hold_before_complete = False
        hooks.delay_per_checkpoint_ms = 0.0
        with hooks.lock:
            held = list(hooks.held.values())
        for event in held:
            event.set()
        app.state.ws_blocked = False
        return {"released": len(held)}
