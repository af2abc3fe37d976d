"""Follow an export until it ends: on the hub's WebSocket where the client can open one,
else by polling with backoff.

WebSocket (CPython with ``websockets``): the socket carries the user's events (R6); the job
is read once right after it opens (events sent before that are not replayed), events of
other jobs and events whose ``seq`` is not newer are dropped, a skipped ``seq`` or 30 s
without any frame makes the client read the job again (a lost frame cannot leave it
waiting), and a completion is followed by one read for the full job (size, SHA-256). A
socket that cannot open or drops hands over to polling; one closed with code 4401 (the
API token was revoked or expired) is ``AuthenticationFailed``.

Polling: ``GET /api/exports/{id}`` every 0.5 s, the wait growing by half up to 5 s while
nothing changes and back to 0.5 s on a change; requests that get no answer are retried by
the transport with its own backoff.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from cellhub_client import platform
from cellhub_client.errors import AuthenticationFailed
from cellhub_client.progress import ProgressCallback, ProgressUpdate
from cellhub_client.shared.models import TERMINAL_STATUSES, ExportEvent, ExportJob
from cellhub_client.shared.routes import EVENTS_PATH, job_path
from cellhub_client.transport import Transport

POLL_FIRST_S = 0.5
POLL_MAX_S = 5.0
POLL_GROWTH = 1.5
SOCKET_QUIET_S = 30.0
REVOKED = 4401


def follow_job(transport: Transport, job: ExportJob, progress: ProgressCallback, use_websocket: bool = True) -> ExportJob:
    """``job`` as it ended (completed, failed, cancelled or expired), reporting each change."""
    if job.status in TERMINAL_STATUSES:
        return job
    socket = _open_socket(transport) if use_websocket and platform.websockets_available() else None
    if socket is not None:
        with socket:
            job = _follow_socket(transport, socket, job, progress)
    return _poll(transport, job, progress)


def read_job(transport: Transport, job_id: str) -> ExportJob:
    return ExportJob.model_validate(transport.json("GET", job_path(job_id)))


def _refresh(transport: Transport, job: ExportJob, progress: ProgressCallback) -> ExportJob:
    latest = read_job(transport, job.id)
    if latest.seq != job.seq or latest.status != job.status:
        progress(ProgressUpdate.of_job(latest))
    return latest


def _poll(transport: Transport, job: ExportJob, progress: ProgressCallback) -> ExportJob:
    wait = POLL_FIRST_S
    while job.status not in TERMINAL_STATUSES:
        platform.sleep(wait)
        latest = _refresh(transport, job, progress)
        wait = POLL_FIRST_S if latest.seq != job.seq else min(POLL_MAX_S, wait * POLL_GROWTH)
        job = latest
    return job


def _open_socket(transport: Transport) -> Optional[Any]:
    from websockets.sync.client import connect

    url = transport.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + EVENTS_PATH
    headers = {"Authorization": transport.session.headers.get("Authorization", "")}
    try:
        return connect(url, additional_headers=headers, open_timeout=transport.timeout, max_size=2**20)
    except Exception:  # noqa: BLE001 - refused, unreachable, timed out: poll instead
        return None


def _follow_socket(transport: Transport, socket: Any, job: ExportJob, progress: ProgressCallback) -> ExportJob:
    """Follow on ``socket`` until the job ends or the socket drops (then the job as last known)."""
    from websockets.exceptions import ConnectionClosed

    job = _refresh(transport, job, progress)
    while job.status not in TERMINAL_STATUSES:
        try:
            frame = socket.recv(timeout=SOCKET_QUIET_S)
        except TimeoutError:
            job = _refresh(transport, job, progress)
            continue
        except ConnectionClosed as closed:
            if closed.rcvd is not None and closed.rcvd.code == REVOKED:
                raise AuthenticationFailed(closed.rcvd.reason or "the API token acts as nobody any more", 401) from None
            return job
        event = _event_for(frame, job)
        if event is None:
            continue
        if event.seq > job.seq + 1 or event.status == "completed":
            job = _refresh(transport, job, progress)  # a skipped event, or the full completed job
            continue
        job = job.model_copy(update={"status": event.status, "progress": event.progress, "stage": event.stage,
                                     "message": event.message, "seq": event.seq})
        progress(ProgressUpdate.of_job(job))
    return job


def _event_for(frame: Any, job: ExportJob) -> Optional[ExportEvent]:
    """The frame as an event of ``job`` newer than what we know, else None (pings, other
    jobs, stale or repeated events, anything unreadable)."""
    try:
        data = json.loads(frame)
        if not isinstance(data, dict) or data.get("job_id") != job.id:
            return None
        event = ExportEvent.model_validate(data)
    except ValueError:
        return None
    return event if event.seq > job.seq else None
