"""The page's boot from the memory snapshot (``server.snapshot``):

- ``GET /boot/pyodide.mjs``: the interpreter module the served ``/pyscript.toml`` names
  (``server.page_assets.BOOT_MODULE``). It re-exports the vendored Pyodide with a
  ``loadPyodide`` that restores the snapshot when one is offered
  (``static/boot/snapshot-boot.mjs``) and else boots Pyodide as it ships. Small, made per
  request (the snapshot may finish building while the server runs), ``no-cache``.
- ``GET /snapshot-{key}.bin``: the snapshot, zstd or gzip by ``Accept-Encoding``, cached for
  good (its name is its sources' hash); 404 for any other key or before it is built. Its
  memory blob is served on its own, likewise, at ``/snapshot-{key}-memory.bin``.
- ``GET /snapshot-{key}-stdlib.zip``: the standard library zip the restored interpreter is
  given (``server.snapshot.slim_stdlib``), likewise cached for good.
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import FileResponse

from server.page_assets import BOOT_MODULE, IMMUTABLE
from server.routes.deps import services
from server.services import Services
from server.snapshot import ENCODINGS, MEMORY, STDLIB, SnapshotBundle, encoding_for

router = APIRouter()


def boot_module(interpreter_url: str, snapshot: SnapshotBundle | None) -> str:
    """The JS of ``/boot/pyodide.mjs`` for the vendored ``interpreter_url``, restoring
    ``snapshot`` (None: none offered)."""
    index_url = interpreter_url.rsplit("/", 1)[0] + "/"
    config = json.dumps({"indexURL": index_url, "snapshot": snapshot.url() if snapshot else None,
                         "memory": snapshot.memory_url() if snapshot else None,
                         "stdlib": snapshot.stdlib_url() if snapshot else None})
    module = json.dumps(interpreter_url)
    return (f"import * as pyodide from {module};\n"
            'import { bootPyodide } from "/static/boot/snapshot-boot.mjs";\n'
            f"export * from {module};\n"
            f"export const loadPyodide = (options) => bootPyodide(pyodide, {config}, options);\n")


@router.get(BOOT_MODULE)
def boot_pyodide(request: Request, svc: Services = Depends(services)):
    snapshot = svc.page.snapshot
    offered = snapshot.offered(request.headers.get("accept-encoding")) is not None
    return Response(boot_module(svc.page.interpreter_url, snapshot if offered else None),
                    media_type="text/javascript", headers={"Cache-Control": "no-cache"})


def _snapshot_file(digest: str, part: str, request: Request, svc: Services) -> FileResponse:
    snapshot = svc.page.snapshot
    coding = encoding_for(request.headers.get("accept-encoding"))
    if digest != snapshot.key or coding is None or not snapshot.ready():
        raise HTTPException(404, "no such snapshot")
    return FileResponse(snapshot.file(part + ENCODINGS[coding]), media_type="application/octet-stream", headers={
        "Cache-Control": IMMUTABLE, "Content-Encoding": coding, "Vary": "Accept-Encoding"})


@router.get("/snapshot-{digest}" + MEMORY + ".bin")
def snapshot_memory(digest: str, request: Request, svc: Services = Depends(services)):
    return _snapshot_file(digest, MEMORY, request, svc)


@router.get("/snapshot-{digest}.bin")
def memory_snapshot(digest: str, request: Request, svc: Services = Depends(services)):
    return _snapshot_file(digest, "", request, svc)


@router.get("/snapshot-{digest}" + STDLIB)
def snapshot_stdlib(digest: str, svc: Services = Depends(services)):
    snapshot = svc.page.snapshot
    if digest != snapshot.key or not snapshot.ready():
        raise HTTPException(404, "no such standard library")
    return FileResponse(snapshot.file(STDLIB), media_type="application/zip", headers={"Cache-Control": IMMUTABLE})
