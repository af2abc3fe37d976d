"""Exports: start (R1, with the fair-use limits of R10), history, one job, cancel (R2),
download (R4), delete a finished one (R10).

A job is its owner's alone, and only while its owner may see its project: anyone else's job,
an unknown one, or one of a project its owner no longer sees answers 404 (R4, R9)."""
from __future__ import annotations

import functools
import os
import re
import time
from typing import Optional
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from app.models import ExportOptions
from server import auth, byte_ranges, project_store
from server.fair_use import StartRefused
from server.jobs import STREAM_HOLD_SECONDS
from server.routes.deps import RowId, services, visible_project
from server.routes.errors import first_few, unprocessable, validation_detail
from server.services import Services

router = APIRouter()

START_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""R1: the client's name for one start request (``?start_token=``), kept on the job."""


def safe_filename(name: str, letters: str = r"A-Za-z0-9") -> str:
    cleaned = re.sub(rf"[^{letters}._-]+", "_", name).strip("._")
    return cleaned[:80] or "export"


def content_disposition(project_name: str, job_id: str) -> str:
    """RFC 6266: ``filename`` in ASCII for old clients, ``filename*`` (RFC 5987, UTF-8) that
    keeps the letters of any script; path separators and quotes become ``_`` in both."""
    plain = f"{safe_filename(project_name)}_export_{job_id}.zip"
    full = safe_filename(project_name, letters=r"\w") + f"_export_{job_id}.zip"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"


@router.post("/api/projects/{project_id}/exports", status_code=202)
def start_export(
    project_id: RowId,
    body: Optional[dict] = Body(default=None),
    start_token: Optional[str] = None,
    user_id: int = Depends(auth.require_user),
    svc: Services = Depends(services),
):
    visible_project(svc, user_id, project_id)
    if start_token is not None and not START_TOKEN.fullmatch(start_token):
        return unprocessable("start_token", "1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'")
    try:
        options = ExportOptions.model_validate(body or {})
    except ValidationError as exc:
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc)})
    if options.image_ids is not None:
        unknown = sorted(set(options.image_ids) - project_store.image_ids(svc.db, project_id))
        if unknown:
            return unprocessable("image_ids", "not images of this project: " + first_few(unknown))
    try:
        job, outcome = svc.store.create(user_id, project_id, options, start_token)
    except StartRefused as exc:
        return JSONResponse(status_code=exc.status, content={"detail": exc.detail})
    if outcome == "repeated":
        if job.project_id != project_id:
            return unprocessable("start_token", "already used for an export of another project")
        return job.model_dump()  # R1: the repeated request gets the job its first copy made
    if outcome == "active":
        return JSONResponse(
            status_code=409,
            content={"detail": "an export of this project is already running", "job": job.model_dump()},
        )
    svc.runner.submit(job.id, user_id)
    return job.model_dump()


@router.get("/api/projects/{project_id}/exports")
def export_history(project_id: RowId, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    visible_project(svc, user_id, project_id)
    out = []
    for job in svc.store.history(user_id, project_id):
        item = job.model_dump()
        item["downloadable"] = job.status == "completed" and svc.store.archive_path(job.id).exists()
        out.append(item)
    return out


def own_job_row(svc: Services, job_id: str, user_id: int):
    """The job's row if ``user_id`` started it and may still see its project; 404 otherwise."""
    row = svc.store.get_row(job_id)
    if row is None or row["user_id"] != user_id:
        raise HTTPException(404, "no such export")
    try:
        visible_project(svc, user_id, row["project_id"])
    except HTTPException:
        raise HTTPException(404, "no such export") from None
    return row


@router.get("/api/exports/{job_id}")
def get_export(job_id: str, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    own_job_row(svc, job_id, user_id)
    return svc.store.get(job_id).model_dump()


@router.post("/api/exports/{job_id}/cancel")
def cancel_export(job_id: str, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    own_job_row(svc, job_id, user_id)
    job = svc.runner.cancel(job_id)
    if job is not None:
        return job.model_dump()
    current = svc.store.get(job_id)
    if current.status == "cancelled":
        return current.model_dump()  # R2: cancelling a cancelled job is a no-op
    if current.status == "completed" and current.delivered:
        return JSONResponse(
            status_code=409, content={"detail": "already downloaded", "job": current.model_dump()}
        )
    return JSONResponse(
        status_code=409, content={"detail": f"the export is already {current.status}", "job": current.model_dump()}
    )


@router.get("/api/exports/{job_id}/download")
def download_export(job_id: str, request: Request, user_id: int = Depends(auth.require_user),
                    svc: Services = Depends(services)):
    """R4 with ranges (``server/DECISIONS.md``, "R4 (ranges)"): 200 with the whole archive or
    206 with the one ``Range`` asked for (``If-Range`` must name the ``ETag``, the archive's
    SHA-256, or the whole file is sent); either marks the job delivered before its first
    byte, a repeated or resumed download of a delivered job is served again; 416 (nothing
    sent, nothing recorded) for a range past the end."""
    row = own_job_row(svc, job_id, user_id)
    store = svc.store
    try:
        handle = open(store.archive_path(job_id), "rb")  # opened before the claim: an fd outlives a later unlink
    except FileNotFoundError:
        handle = None
    if handle is None:
        raise _not_downloadable(store, job_id)
    try:
        size = os.fstat(handle.fileno()).st_size
        etag = f'"{store.archive_digest(job_id, handle)}"'
        wanted = byte_ranges.requested_range(request.headers.get("range"), request.headers.get("if-range"), etag, size)
        if not store.claim_download(job_id):
            raise _not_downloadable(store, job_id)
    except byte_ranges.Unsatisfiable:
        handle.close()
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", "ETag": etag,
                                                  "Accept-Ranges": "bytes", "Cache-Control": "no-store"})
    except BaseException:
        handle.close()
        raise
    project_row = project_store.project_row(svc.db, row["project_id"])
    headers = {
        "Content-Disposition": content_disposition(project_row["name"] if project_row else "project", job_id),
        "Cache-Control": "no-store",
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }
    part = wanted or byte_ranges.ByteRange(0, size - 1)
    headers["Content-Length"] = str(part.length if size else 0)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range(size)
    hold = functools.partial(store.hold_stream, job_id)  # R5: a streaming download, no expiry
    return StreamingResponse(_file_part(handle, part.first, part.length, hold), status_code=206 if wanted else 200,
                             media_type="application/zip", headers=headers)


def _not_downloadable(store, job_id: str) -> HTTPException:
    """Why the job has no archive to send: 410 once it is gone for good, 409 while it runs."""
    job = store.get(job_id)
    status = job.status if job is not None else "deleted"
    if status in ("cancelled", "expired", "failed"):
        return HTTPException(410, f"the export is {status}; its archive is gone")
    if status in ("queued", "running"):
        return HTTPException(409, "the export is not finished yet")
    return HTTPException(410, "the archive is gone")


def _file_part(handle, first: int, length: int, hold, chunk: int = 1024 * 1024):
    """``length`` bytes of the open file ``handle`` from ``first``, in chunks; closes it.
    Calls ``hold()`` every ``STREAM_HOLD_SECONDS / 3`` while it streams (R5: no expiry)."""
    held = time.monotonic()
    try:
        handle.seek(first)
        while length > 0 and (data := handle.read(min(chunk, length))):
            length -= len(data)
            if time.monotonic() - held > STREAM_HOLD_SECONDS / 3:
                hold()
                held = time.monotonic()
            yield data
    finally:
        handle.close()


@router.delete("/api/exports/{job_id}")
def delete_export(job_id: str, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    """Delete a finished export: its archive and its entry. A completed export not yet
    downloaded is cancelled first (R2), so no tab downloads it; a queued or running one is
    409 (cancel it first)."""
    row = own_job_row(svc, job_id, user_id)
    if row["status"] in ("queued", "running"):
        return JSONResponse(status_code=409, content={
            "detail": "the export is still running; cancel it first", "job": svc.store.get(job_id).model_dump()})
    if row["status"] == "completed" and not row["delivered"]:
        svc.runner.cancel(job_id)
    if not svc.store.delete(job_id):
        current = svc.store.get(job_id)
        if current is None:
            raise HTTPException(404, "no such export")
        return JSONResponse(status_code=409, content={
            "detail": f"the export is {current.status}", "job": current.model_dump()})
    return {"deleted": job_id}
