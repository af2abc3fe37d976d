"""Test-only routes, mounted only when ``CELLHUB_TEST_HOOKS=1`` (never by the run command).

- ``POST /api/test/hooks`` ``{hold_before_complete, delay_per_checkpoint_ms}``: set the controls.
- ``GET /api/test/jobs/{id}``: ``{held, status, attempt, delivered, archive_exists,
  partial_exists, files, worker_pid, sha256, download_requests, downloads_served}`` for races, disk checks
  and download counts (``files``: the names of every attempt's files of the job;
  ``worker_pid``: the cluster worker process that claimed it last, else null).
- ``POST /api/test/users`` ``{username, password}``: add a user (isolates tests).
- ``POST /api/test/jobs/{id}/release``: let a held job go on to its completion CAS.
- ``GET /api/test/ws``: ``{connections}``: the WebSockets open on this process.
- ``POST /api/test/ws/drop``: close every WebSocket connection.
- ``POST /api/test/ws/block`` ``{blocked}``: refuse new WebSocket connections.
- ``POST /api/test/downloads`` ``{refuse}``: answer every ``GET /api/exports/{id}/download``
  503 before the app sees it (the job is not marked delivered: a download that never
  reaches the export service, as when the server goes down at that moment).
- ``/test-pages/...``: the test and benchmark pages of ``testkit/pages/`` (the core trace
  page, the P1 baseline page, the P3 Pyodide runner).
- ``POST /api/test/reset``: no hold, no delay, every held job released, WebSockets allowed,
  downloads served (what a test's teardown calls so a failed test cannot leave a worker held).

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


class DownloadCounts:
    """Download requests and their 200 or 206 answers per job id, in this process."""

    def __init__(self) -> None:
        self.counters = {"requests": Counter(), "served": Counter()}
        self.lock = threading.Lock()

    def add(self, kind: str, job_id: str) -> None:
        with self.lock:
            self.counters[kind][job_id] += 1

    def get(self, kind: str, job_id: str) -> int:
        with self.lock:
            return self.counters[kind][job_id]


class DownloadCounter:
    """ASGI middleware: counts download requests per job id and how many were answered 200 or
    206 (``counts``: a ``DownloadCounts``, or the cluster's shared one)."""

    def __init__(self, app, counts, refusing: dict | None = None) -> None:
        self.app = app
        self.counts = counts
        self.refusing = refusing if refusing is not None else {"on": False}
        """``{"on": bool}``: while on, every download is answered 503 here (``/api/test/downloads``)."""

    async def __call__(self, scope, receive, send):
        match = _DOWNLOAD_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None:
            return await self.app(scope, receive, send)
        job_id = match.group(1)
        self.counts.add("requests", job_id)
        if self.refusing["on"]:
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b'{"detail": "downloads refused (test hook)"}'})
            return

        async def counting_send(message):
            if message["type"] == "http.response.start" and message["status"] in (200, 206):
                self.counts.add("served", job_id)
            await send(message)

        return await self.app(scope, receive, counting_send)


def add_test_routes(app: FastAPI, hooks: TestHooks, hub: Hub, runner: Runner) -> None:
    from server.page_assets import ROOT, VersionedStatic

    make_counts = getattr(hooks, "download_counts", None)  # the cluster's hooks share theirs
    counts = make_counts() if make_counts is not None else DownloadCounts()
    refusing = {"on": False}  # POST /api/test/downloads
    app.add_middleware(DownloadCounter, counts=counts, refusing=refusing)
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
        # Any attempt's files: after a cancel none may be left, whichever worker wrote them.
        files = sorted(p.name for p in runner.store.exports_dir.glob(f"{job_id}.*"))
        return {
            "sha256": hashlib.sha256(archive.read_bytes()).hexdigest() if archive.exists() else None,
            "held": hooks.is_held(job_id),
            "status": row["status"] if row else None,
            "attempt": row["attempts"] if row else None,
            "delivered": bool(row["delivered"]) if row else None,
            "archive_exists": any(name.endswith(".zip") for name in files),
            "partial_exists": any(name.endswith(".part") for name in files),
            "files": files,
            "worker_pid": hooks.run_pid(job_id) if hasattr(hooks, "run_pid") else None,
            "download_requests": counts.get("requests", job_id),
            "downloads_served": counts.get("served", job_id),
        }

    @app.post("/api/test/users")
    def add_user(body: dict = Body(...)):
        from server import auth

        user_id = auth.add_user(app.state.db, str(body["username"]), str(body["password"]))
        return {"id": user_id}

    @app.post("/api/test/jobs/{job_id}/release")
    def release(job_id: str):
        return {"released": hooks.release(job_id)}

    @app.get("/api/test/ws")
    def sockets():
        return {"connections": sum(len(conns) for conns in hub.connections.values())}

    @app.post("/api/test/ws/drop")
    async def drop():
        return {"dropped": await hub.drop_all()}

    @app.post("/api/test/ws/block")
    def block(body: dict = Body(...)):
        app.state.ws_blocked = bool(body.get("blocked"))
        return {"blocked": app.state.ws_blocked}

    @app.post("/api/test/downloads")
    def refuse_downloads(body: dict = Body(...)):
        refusing["on"] = bool(body.get("refuse"))
        return {"refuse": refusing["on"]}

    @app.post("/api/test/reset")
    def reset():
        released = hooks.reset()
        app.state.ws_blocked = False
        refusing["on"] = False
        return {"released": released}
