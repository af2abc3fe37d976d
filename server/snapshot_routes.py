"""Routes of the page's boot from the memory snapshot (``server.snapshot``):

- ``GET /boot/pyodide.mjs``: the interpreter module ``/pyscript.toml`` names. It re-exports
  the vendored Pyodide with a ``loadPyodide`` that restores the snapshot when one is offered
  (``static/boot/snapshot-boot.mjs``) and else boots Pyodide as it ships. Small, made per
  request (the snapshot may finish building while the server runs), ``no-cache``.
- ``GET /snapshot-{key}.bin``: the snapshot, zstd or gzip by ``Accept-Encoding``, cached for
  good (its name is its sources' hash); 404 for any other key or before it is built.
"""
from __future__ import annotations

import json

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse

from server.snapshot import ENCODINGS, SnapshotBundle, encoding_for

BOOT_MODULE = "/boot/pyodide.mjs"
IMMUTABLE = "public, max-age=31536000, immutable"


def boot_module(interpreter_url: str, snapshot_url: str | None) -> str:
    """The JS of ``/boot/pyodide.mjs`` for the vendored ``interpreter_url``."""
    index_url = interpreter_url.rsplit("/", 1)[0] + "/"
    config = json.dumps({"indexURL": index_url, "snapshot": snapshot_url})
    module = json.dumps(interpreter_url)
    return (f"import * as pyodide from {module};\n"
            'import { bootPyodide } from "/static/boot/snapshot-boot.mjs";\n'
            f"export * from {module};\n"
            f"export const loadPyodide = (options) => bootPyodide(pyodide, {config}, options);\n")


def add_snapshot_routes(app: FastAPI, snapshot: SnapshotBundle, interpreter_url: str) -> None:
    """Serve ``BOOT_MODULE`` and the snapshot of ``snapshot`` on ``app``."""

    @app.get(BOOT_MODULE)
    def boot_pyodide(request: Request):
        body = boot_module(interpreter_url, snapshot.offered(request.headers.get("accept-encoding")))
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/snapshot-{digest}.bin")
    def memory_snapshot(digest: str, request: Request):
        coding = encoding_for(request.headers.get("accept-encoding"))
        if digest != snapshot.key or coding is None or not snapshot.ready():
            raise HTTPException(404, "no such snapshot")
        return FileResponse(snapshot.file(ENCODINGS[coding]), media_type="application/octet-stream", headers={
            "Cache-Control": IMMUTABLE, "Content-Encoding": coding, "Vary": "Accept-Encoding"})
