"""The page's runtime: ``pyscript.toml``, the ``app`` zip (plain and content-hashed), the
bytecode bundle and the static folder (vendored Pyodide/PyScript, wheels, CSS)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from fastapi.responses import Response

from server.page_assets import IMMUTABLE, ROOT, VersionedStatic
from server.routes.deps import services
from server.services import Services

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
def bytecode_bundle(digest: str, svc: Services = Depends(services)):
    bytecode = svc.page.bytecode
    data = bytecode.current() if digest == bytecode.key else None
    if data is None:
        raise HTTPException(404, "no such bytecode bundle")
    return Response(data, media_type="application/octet-stream",
                    headers={"Cache-Control": IMMUTABLE, "Content-Encoding": "gzip"})


def mount_static(app: FastAPI) -> None:
    app.mount("/static", VersionedStatic(directory=ROOT / "static"), name="static")
