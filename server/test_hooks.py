"""Test-only routes, mounted only when ``CELLHUB_TEST_HOOKS=1`` (never by the run command).

- ``POST /api/test/hooks`` ``{hold_before_complete, delay_per_checkpoint_ms}``: set the controls.
- ``GET /api/test/jobs/{id}``: ``{held, status, delivered, archive_exists, partial_exists, sha256}`` for races and disk checks.
- ``POST /api/test/users`` ``{username, password}``: add a user (isolates tests).
- ``POST /api/test/jobs/{id}/release``: let a held job go on to its completion CAS.
- ``POST /api/test/ws/drop``: close every WebSocket connection.
- ``POST /api/test/ws/block`` ``{blocked}``: refuse new WebSocket connections.
"""
from __future__ import annotations

import hashlib

from fastapi import Body, FastAPI

from server.events import Hub
from server.jobs import Runner, TestHooks


def add_test_routes(app: FastAPI, hooks: TestHooks, hub: Hub, runner: Runner) -> None:
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
