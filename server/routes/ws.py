"""The WebSocket ``/api/ws``: R6 events of the signed-in user's jobs, a snapshot of its active
jobs on (re)connect, and a heartbeat ping."""
from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from app.models import ExportEvent
from server import auth, bearer, project_store
from server.events import HEARTBEAT_SECONDS, Connection

router = APIRouter()


@router.websocket("/api/ws")
async def ws(websocket: WebSocket):
    svc = websocket.app.state.services
    secret = bearer.bearer_secret(websocket)
    token = bearer.websocket_token(websocket, secret) if secret is not None else None
    user_id = auth.websocket_user(websocket) if secret is None else token.user_id if token else None
    if user_id is None or getattr(websocket.app.state, "ws_blocked", False):
        await websocket.close(code=4401)
        return
    if not svc.hub.accepting:  # the cluster's event listener is down: poll meanwhile (C7)
        await websocket.close(code=1013)
        return
    await websocket.accept()
    conn = Connection(websocket, user_id, token.token_id if token else None)
    svc.hub.add(conn)
    # A (re)connecting client first gets the current state of its active jobs (of the
    # projects it may still see: R9).
    for job in svc.store.active_for(user_id):
        if project_store.project_access(svc.db, user_id, job.project_id)[1] is None:
            continue
        conn.queue.put_nowait(ExportEvent.from_job(job, time.time() * 1000).model_dump())
    sender = asyncio.create_task(conn.sender())

    async def heartbeat():
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            conn.queue.put_nowait({"type": "ping", "ts": time.time() * 1000})

    beat = asyncio.create_task(heartbeat())
    # A socket opened with an API token closes when the token expires or is revoked.
    watch = asyncio.create_task(bearer.close_when_unusable(websocket, token, HEARTBEAT_SECONDS)) if token else None
    try:
        while True:
            await websocket.receive_text()  # clients send nothing we need; this notices closes
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        svc.hub.remove(conn)
        beat.cancel()
        if watch is not None:
            watch.cancel()
        conn.queue.put_nowait(None)
        sender.cancel()
