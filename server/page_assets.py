"""What the server hands the browser to start the page: the ``app`` package as a zip, the
bytecode bundle, the memory snapshot, the boot manifest, the page templates and the static
folder's cache rules."""
from __future__ import annotations

import hashlib
import io
import json
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastapi.staticfiles import StaticFiles

from server.bytecode import BytecodeBundle
from server.snapshot import SnapshotBundle

ROOT = Path(__file__).resolve().parents[1]
IMMUTABLE = "public, max-age=31536000, immutable"
BOOT_MODULE = "/boot/pyodide.mjs"
"""The interpreter module the served ``pyscript.toml`` names: the vendored Pyodide wrapped
to restore the memory snapshot (``server.routes.snapshot``)."""


def build_app_zip(root: Optional[Path] = None) -> bytes:
    """The ``app`` package under ``root`` (default: this checkout) as a zip for the browser
    (PyScript unpacks it into ./app). Its bytes depend on the files' names and contents only
    (fixed times and modes), so a fresh clone serves the same zip, with the same bytecode
    bundle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        base = (root or ROOT) / "app"
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".md", ".json"):
                info = zipfile.ZipInfo(path.relative_to(base).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def page_bytecode_bundle(app_zip: Optional[bytes] = None) -> BytecodeBundle:
    """The ``BytecodeBundle`` of the page as served: ``app_zip`` (default: ``build_app_zip()``),
    the static folder's wheels and the interpreter ``pyscript.toml`` names."""
    return BytecodeBundle(build_app_zip() if app_zip is None else app_zip, ROOT / "static", vendored_interpreter())


def vendored_interpreter() -> str:
    """The URL of the vendored ``pyodide.mjs`` that ``pyscript.toml`` names."""
    return tomllib.loads((ROOT / "pyscript.toml").read_text(encoding="utf-8"))["interpreter"]


def page_snapshot(app_zip: Optional[bytes] = None) -> SnapshotBundle:
    """The page's ``SnapshotBundle``, of the same sources as ``page_bytecode_bundle``."""
    return SnapshotBundle(build_app_zip() if app_zip is None else app_zip, ROOT / "static", vendored_interpreter())


def boot_manifest(bytecode: BytecodeBundle, wheels: list[str], project_id: Optional[int],
                  snapshot: Optional[str] = None) -> str:
    """What the page's inline script requests before Python starts (``index.html``): the
    project JSON, the wheels, once built the bytecode bundle, and the memory snapshot's
    URL when one is offered (``SnapshotBundle.offered``); as a JS literal."""
    manifest = {
        "project": f"/api/projects/{project_id}" if project_id is not None else None,
        "wheels": [f"/static/wheels/{name}" for name in wheels],
        "bytecode": bytecode.url() if bytecode.current() is not None else None,
    }
    if snapshot is not None:
        manifest["snapshot"] = snapshot
    return json.dumps(manifest).replace("<", "\\u003c")  # never a "</script>" inside the script


@dataclass
class PageAssets:
    """The page's files as served, read once at start: the app zip (and its content-hashed
    name), the bytecode bundle, the memory snapshot and the vendored interpreter it wraps,
    ``index.html`` and the sign-in page, the wheels' names and ``pyscript.toml`` pointing at
    the hashed app zip and at ``BOOT_MODULE``."""

    app_zip: bytes
    app_zip_name: str
    bytecode: BytecodeBundle
    snapshot: SnapshotBundle
    interpreter_url: str
    index_template: str
    signin_page: str
    wheel_names: list[str]
    pyscript_config: str

    @classmethod
    def load(cls) -> "PageAssets":
        app_zip = build_app_zip()
        app_zip_name = f"app-{hashlib.sha256(app_zip).hexdigest()[:16]}.zip"
        wheels_json = ROOT / "static" / "wheels" / "wheels.json"
        interpreter_url = vendored_interpreter()
        return cls(
            app_zip=app_zip,
            app_zip_name=app_zip_name,
            bytecode=page_bytecode_bundle(app_zip),
            snapshot=page_snapshot(app_zip),
            interpreter_url=interpreter_url,
            index_template=(ROOT / "index.html").read_text(encoding="utf-8"),
            signin_page=(ROOT / "static" / "signin.html").read_text(encoding="utf-8"),
            wheel_names=json.loads(wheels_json.read_text()) if wheels_json.is_file() else [],
            # The app zip's name carries its content hash, so it can be cached for good; the
            # page's interpreter is the boot module, which wraps the vendored Pyodide.
            pyscript_config=(ROOT / "pyscript.toml").read_text(encoding="utf-8").replace(
                '"/app.zip"', f'"/{app_zip_name}"').replace(f'"{interpreter_url}"', f'"{BOOT_MODULE}"'),
        )


class VersionedStatic(StaticFiles):
    """Static files; the runtime under ``vendor/<name>/<version>/`` and the wheels (whose
    names carry their versions) are immutable, so a second visit fetches none of them."""

    def file_response(self, full_path, stat_result, scope, status_code=200):
        response = super().file_response(full_path, stat_result, scope, status_code)
        rel = Path(full_path).as_posix()
        if "/static/vendor/" in rel or rel.endswith(".whl"):
            response.headers["Cache-Control"] = IMMUTABLE
        else:
            response.headers["Cache-Control"] = "no-cache"
        return response
