"""The page's runtime: ``pyscript.toml``, the ``app`` zip (plain and content-hashed), the
bytecode bundle and the static folder (vendored Pyodide/PyScript, wheels, CSS)."""
from __future__ import annotations

import gzip

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response

from server.page_assets import IMMUTABLE, ROOT, VersionedStatic
from server.routes.deps import services
from server.services import Services
from server.snapshot import encoding_for

router = APIRouter()


@router.get("/pyscript.toml")
def pyscript_toml(svc: Services = Depends(services)):
    # The app zip's name carries its content hash, so it can be cached for good.
    return Response(svc.page.pyscript_config, media_type="application/toml", headers={"Cache-Control": "no-cache"})


@router.get("/app.zip")
def app_package(svc: Services = Depends(services)):
    return Response(svc.page.app_zip, media_type="application/zip", headers={"Cache-Control": "no-cache"})


@router.get("/app-{digest}.zip")
def app_package_versioned(digest: str, svc: Services = Depends(services)):
    if f"app-{digest}.zip" != svc.page.app_zip_name:
        raise HTTPException(404, "unknown app version")
    return Response(svc.page.app_zip, media_type="application/zip", headers={"Cache-Control": IMMUTABLE})


@router.get("/bytecode-{digest}.bin")
def bytecode_bundle(digest: str, request: Request, svc: Services = Depends(services)):
    """The bundle, stored gzip-compressed: sent so to a client that takes gzip, else as is."""
    bytecode = svc.page.bytecode
    data = bytecode.current() if digest == bytecode.key else None
    if data is None:
        raise HTTPException(404, "no such bytecode bundle")
    headers = {"Cache-Control": IMMUTABLE, "Vary": "Accept-Encoding"}
    if encoding_for(request.headers.get("accept-encoding"), ("gzip",)) is None:
        return Response(gzip.decompress(data), media_type="application/octet-stream", headers=headers)
    return Response(data, media_type="application/octet-stream", headers={**headers, "Content-Encoding": "gzip"})


def mount_static(app: FastAPI) -> None:
    app.mount("/static", VersionedStatic(directory=ROOT / "static"), name="static")
