"""The HTTP + WebSocket service (FastAPI): page, static runtime, API of DESIGN.md.

``create_app(settings)`` builds one app over one data directory. Errors are JSON
``{"detail": ...}``; validation errors are 422 naming the field and the reason (R8).
"""
from __future__ import annotations

import asyncio
import hashlib
import html
import io
import json
import os
import re
import time
import tomllib
import zipfile
from urllib.parse import quote, urlencode
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

from fastapi import Body, Depends, FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ValidationError

from app.models import EVENT_FOR_STATUS, ExportOptions
from server import auth
from server.bytecode import BytecodeBundle
from server.db import Database
from server.events import HEARTBEAT_SECONDS, Connection, Hub
from server.jobs import JobStore, Runner, TestHooks
from server.snapshot import SnapshotBundle
from server.snapshot_routes import BOOT_MODULE, add_snapshot_routes

# A project or image id in a URL: SQLite's INTEGER range, so a bigger number is a 422 naming
# the parameter instead of an OverflowError (500) from the database driver.
RowId = Annotated[int, PathParam(ge=-(2**63), le=2**63 - 1)]

START_TOKEN = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""R1: the client's name for one start request (``?start_token=``), kept on the job."""

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    """Service settings. ``archive_ttl_seconds``: how long a completed archive is kept (R5)."""

    data_dir: Path
    archive_ttl_seconds: float = 24 * 3600
    test_hooks: bool = False
    workers: int = 2
    seed_demo: bool = True
    demo_images: int = 12
    demo_size: int = 512
    max_upload_bytes: int = 200 * 1024 * 1024
    extra: dict[str, Any] = field(default_factory=dict)


def build_app_zip() -> bytes:
    """The ``app`` package as a zip for the browser (PyScript unpacks it into ./app). Its bytes
    depend on the files' names and contents only (fixed times and modes), so a fresh clone
    serves the same zip, with the same bytecode bundle."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        base = ROOT / "app"
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
    interpreter = tomllib.loads((ROOT / "pyscript.toml").read_text(encoding="utf-8"))["interpreter"]
    return BytecodeBundle(build_app_zip() if app_zip is None else app_zip, ROOT / "static", interpreter)


def page_snapshot(app_zip: Optional[bytes] = None) -> SnapshotBundle:
    """The page's ``SnapshotBundle``, of the same sources as ``page_bytecode_bundle``."""
    interpreter = tomllib.loads((ROOT / "pyscript.toml").read_text(encoding="utf-8"))["interpreter"]
    return SnapshotBundle(build_app_zip() if app_zip is None else app_zip, ROOT / "static", interpreter)


def _safe_filename(name: str, letters: str = r"A-Za-z0-9") -> str:
    cleaned = re.sub(rf"[^{letters}._-]+", "_", name).strip("._")
    return cleaned[:80] or "export"


def _no_such_project(asked: str, projects: list[dict]) -> HTMLResponse:
    """404 page for ``/?project=<asked>`` when there is no such project (a stale link, a typo):
    it says so and links every project there is, instead of showing another one."""
    items = "".join(f'<li><a href="/?project={p["id"]}">{html.escape(p["name"])}</a></li>' for p in projects)
    body = (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>No such project</title>"
            f"<h1>No project {html.escape(asked)} here</h1>"
            + (f"<p>Open one of these projects:</p><ul>{items}</ul>" if projects else "<p>There are no projects yet.</p>"))
    return HTMLResponse(body, status_code=404, headers={"Cache-Control": "no-store"})


def _first_few(values: list, shown: int = 10) -> str:
    """``values`` as a list, cut after ``shown`` items with "... and N more" (an error answer
    must not echo a huge request back)."""
    if len(values) <= shown:
        return str(values)
    return f"{str(values[:shown])[:-1]}, ...] and {len(values) - shown} more"


def _content_disposition(project_name: str, job_id: str) -> str:
    """RFC 6266: ``filename`` in ASCII for old clients, ``filename*`` (RFC 5987, UTF-8) that
    keeps the letters of any script; path separators and quotes become ``_`` in both."""
    plain = f"{_safe_filename(project_name)}_export_{job_id}.zip"
    full = _safe_filename(project_name, letters=r"\w") + f"_export_{job_id}.zip"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"


def _validation_detail(exc: ValidationError | RequestValidationError) -> list[dict]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        # A rule over several fields (e.g. "nothing to export") names the options as a whole.
        out.append({"field": ".".join(loc) or "options", "reason": err.get("msg", "invalid")})
    return out


IMMUTABLE = "public, max-age=31536000, immutable"


def _boot_manifest(bytecode: BytecodeBundle, wheels: list[str], project_id: Optional[int],
                   snapshot: Optional[str] = None) -> str:
    """What the page's inline script requests before Python starts (``index.html``): the
    project JSON, the wheels, once built the bytecode bundle, and the memory snapshot's
    URL when one is offered (``server.snapshot``); as a JS literal."""
    manifest = {
        "project": f"/api/projects/{project_id}" if project_id is not None else None,
        "wheels": [f"/static/wheels/{name}" for name in wheels],
        "bytecode": bytecode.url() if bytecode.current() is not None else None,
    }
    if snapshot is not None:
        manifest["snapshot"] = snapshot
    return json.dumps(manifest).replace("<", "\\u003c")  # never a "</script>" inside the script


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


class SessionBody(BaseModel):
    username: str
    password: str


def create_app(settings: Settings) -> FastAPI:
    """The FastAPI app over ``settings.data_dir`` (created if missing)."""
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    files_root = data_dir / "files"
    files_root.mkdir(exist_ok=True)
    db = Database(data_dir / "cellhub.sqlite3")
    hub = Hub()
    store = JobStore(db, data_dir / "exports", hub.publish)
    hooks = TestHooks() if settings.test_hooks else None

    def build(job, dest: Path, checkpoint) -> list[str]:
        from server.archive.writer import write_archive

        project = db.load_project(job.project_id, files_root, job.options.image_ids)
        result = write_archive(project, project.images, job.options, dest, checkpoint)
        return list(getattr(result, "warnings", []) or [])

    runner = Runner(store, build, hooks, workers=settings.workers)
    app_zip = build_app_zip()
    app_zip_name = f"app-{hashlib.sha256(app_zip).hexdigest()[:16]}.zip"
    bytecode = page_bytecode_bundle(app_zip)
    snapshot = page_snapshot(app_zip)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        hub.bind(asyncio.get_running_loop())
        recover_jobs(store, runner)
        stop = asyncio.Event()
        expiry = asyncio.create_task(expiry_loop(store, settings.archive_ttl_seconds, stop))
        try:
            yield
        finally:
            stop.set()
            expiry.cancel()
            await asyncio.get_running_loop().run_in_executor(None, runner.shutdown)

    app = FastAPI(title="Cell segmentation hub: export", lifespan=lifespan)
    app.state.db = db
    app.state.settings = settings
    app.state.store = store
    app.state.runner = runner
    app.state.hub = hub
    app.state.hooks = hooks
    app.state.files_root = files_root

    if settings.seed_demo:
        from server.projects import seed_demo_if_empty

        seed_demo_if_empty(db, files_root, n_images=settings.demo_images, size=settings.demo_size)

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _validation_detail(exc)})

    # --- page and runtime --------------------------------------------------------
    index_template = (ROOT / "index.html").read_text(encoding="utf-8")
    wheels_json = ROOT / "static" / "wheels" / "wheels.json"
    wheel_names = json.loads(wheels_json.read_text()) if wheels_json.is_file() else []
    signin_page = (ROOT / "static" / "signin.html").read_text(encoding="utf-8")

    def _user_or_none(request: Request) -> Optional[int]:
        return auth.session_user(db, request.cookies.get(auth.SESSION_COOKIE))

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, project: Optional[str] = None):
        if _user_or_none(request) is None:
            # Back to the project that was asked for, once signed in.
            target = "/signin" if project is None else "/signin?" + urlencode({"next": f"/?project={project}"})
            return RedirectResponse(target, status_code=303)
        projects = db.list_projects()
        if project is None:
            chosen = projects[0] if projects else None
        else:
            chosen = next((p for p in projects if str(p["id"]) == project.strip()), None)
            if chosen is None:
                return _no_such_project(project, projects)
        page = index_template.replace("{{PROJECT_ID}}", str(chosen["id"] if chosen else ""))
        page = page.replace("{{PROJECT_NAME}}", html.escape(chosen["name"] if chosen else "No project yet"))
        page = page.replace(
            "{{PROJECT_NOTE}}", html.escape(chosen["description"] if chosen and chosen["synthetic"] else "")
        )
        offered = snapshot.offered(request.headers.get("accept-encoding"))
        page = page.replace("{{BOOT}}", _boot_manifest(bytecode, wheel_names, chosen["id"] if chosen else None, offered))
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/signin", response_class=HTMLResponse)
    def signin():
        return HTMLResponse(signin_page, headers={"Cache-Control": "no-store"})

    pyscript_source = (ROOT / "pyscript.toml").read_text(encoding="utf-8")
    interpreter_url = tomllib.loads(pyscript_source)["interpreter"]
    # The page's interpreter is the boot module, which wraps the vendored Pyodide.
    pyscript_config = pyscript_source.replace('"/app.zip"', f'"/{app_zip_name}"').replace(
        f'"{interpreter_url}"', f'"{BOOT_MODULE}"')
    add_snapshot_routes(app, snapshot, interpreter_url)

    @app.get("/pyscript.toml")
    def pyscript_toml():
        # The app zip's name carries its content hash, so it can be cached for good.
        return Response(pyscript_config, media_type="application/toml", headers={"Cache-Control": "no-cache"})

    @app.get("/app.zip")
    def app_package():
        return Response(app_zip, media_type="application/zip", headers={"Cache-Control": "no-cache"})

    @app.get("/app-{digest}.zip")
    def app_package_versioned(digest: str):
        if f"app-{digest}.zip" != app_zip_name:
            raise HTTPException(404, "unknown app version")
        return Response(app_zip, media_type="application/zip", headers={"Cache-Control": IMMUTABLE})

    @app.get("/bytecode-{digest}.bin")
    def bytecode_bundle(digest: str):
        data = bytecode.current() if digest == bytecode.key else None
        if data is None:
            raise HTTPException(404, "no such bytecode bundle")
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": IMMUTABLE, "Content-Encoding": "gzip"})

    app.mount("/static", VersionedStatic(directory=ROOT / "static"), name="static")

    # --- sessions -----------------------------------------------------------------
    def _set_session(response: Response, user_id: int) -> None:
        token = auth.new_session(db, user_id)
        response.set_cookie(
            auth.SESSION_COOKIE, token, httponly=True, samesite="strict", max_age=auth.SESSION_SECONDS, path="/"
        )

    @app.get("/login")
    def login_with_token(token: str = ""):
        user_id = auth.use_login_token(db, token) if token else None
        if user_id is None:
            return HTMLResponse(
                "<!doctype html><title>Sign-in link used</title><p>This sign-in link is unknown or was already used."
                " Restart the server for a new one, or <a href='/signin'>sign in with a password</a>.</p>",
                status_code=403,
            )
        response = RedirectResponse("/", status_code=303)
        _set_session(response, user_id)
        return response

    @app.post("/api/session")
    def sign_in(request: Request, body: SessionBody):
        if request.headers.get(auth.CSRF_HEADER) != auth.CSRF_VALUE or not auth.same_origin(
            request.headers.get("origin"), request.headers.get("host")
        ):
            raise HTTPException(403, "cross-site request refused")
        user_id = auth.check_password(db, body.username, body.password)
        if user_id is None:
            raise HTTPException(401, "wrong username or password")
        response = JSONResponse({"username": body.username})
        _set_session(response, user_id)
        return response

    @app.delete("/api/session")
    def sign_out(request: Request, user_id: int = Depends(auth.require_user)):
        auth.end_session(db, request.cookies.get(auth.SESSION_COOKIE, ""))
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    @app.get("/api/session")
    def whoami(user_id: int = Depends(auth.require_user)):
        row = db.one("SELECT username FROM users WHERE id = ?", (user_id,))
        return {"username": row["username"] if row else None}

    # --- projects -----------------------------------------------------------------
    @app.get("/api/projects")
    def projects(user_id: int = Depends(auth.require_user)):
        return db.list_projects()

    def _project_or_404(project_id: int):
        row = db.project_row(project_id)
        if row is None:
            raise HTTPException(404, f"no project {project_id}")
        return row

    @app.get("/api/projects/{project_id}")
    def project(project_id: RowId, user_id: int = Depends(auth.require_user)):
        row = _project_or_404(project_id)
        images = [
            {
                "id": r["id"],
                "file_name": r["file_name"],
                "width": r["width"],
                "height": r["height"],
                "object_count": r["object_count"],
            }
            for r in db.image_rows(project_id)
        ]
        return {
            "id": row["id"],
            "name": row["name"],
            "description": row["description"],
            "synthetic": bool(row["synthetic"]),
            "pixel_size_um": row["pixel_size_um"],
            "categories": json.loads(row["categories_json"]),
            "images": images,
            "object_count": sum(i["object_count"] for i in images),
        }

    @app.get("/api/projects/{project_id}/images/{image_id}/thumbnail")
    def thumbnail(project_id: RowId, image_id: RowId, user_id: int = Depends(auth.require_user)):
        from server.projects import thumbnail_path

        row = db.one("SELECT * FROM images WHERE id = ? AND project_id = ?", (image_id, project_id))
        if row is None:
            raise HTTPException(404, "no such image")
        path = thumbnail_path(data_dir, files_root, row)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    # --- exports ------------------------------------------------------------------
    @app.post("/api/projects/{project_id}/exports", status_code=202)
    def start_export(
        project_id: RowId,
        body: Optional[dict] = Body(default=None),
        start_token: Optional[str] = None,
        user_id: int = Depends(auth.require_user),
    ):
        _project_or_404(project_id)
        if start_token is not None and not START_TOKEN.fullmatch(start_token):
            return JSONResponse(status_code=422, content={"detail": [
                {"field": "start_token", "reason": "1-64 characters of A-Z, a-z, 0-9, '.', '_' and '-'"}]})
        try:
            options = ExportOptions.model_validate(body or {})
        except ValidationError as exc:
            return JSONResponse(status_code=422, content={"detail": _validation_detail(exc)})
        if options.image_ids is not None:
            known = {r["id"] for r in db.image_rows(project_id)}
            unknown = sorted(set(options.image_ids) - known)
            if unknown:
                return JSONResponse(
                    status_code=422,
                    content={"detail": [{"field": "image_ids", "reason": "not images of this project: "
                                         + _first_few(unknown)}]},
                )
        job, outcome = store.create(user_id, project_id, options, start_token)
        if outcome == "repeated":
            if job.project_id != project_id:
                return JSONResponse(status_code=422, content={"detail": [
                    {"field": "start_token", "reason": "already used for an export of another project"}]})
            return job.model_dump()  # R1: the repeated request gets the job its first copy made
        if outcome == "active":
            return JSONResponse(
                status_code=409,
                content={"detail": "an export of this project is already running", "job": job.model_dump()},
            )
        runner.submit(job.id)
        return job.model_dump()

    @app.get("/api/projects/{project_id}/exports")
    def export_history(project_id: RowId, user_id: int = Depends(auth.require_user)):
        _project_or_404(project_id)
        out = []
        for job in store.history(user_id, project_id):
            item = job.model_dump()
            item["downloadable"] = job.status == "completed" and store.archive_path(job.id).exists()
            out.append(item)
        return out

    def _own_job_row(job_id: str, user_id: int):
        row = store.get_row(job_id)
        if row is None or row["user_id"] != user_id:
            raise HTTPException(404, "no such export")
        return row

    @app.get("/api/exports/{job_id}")
    def get_export(job_id: str, user_id: int = Depends(auth.require_user)):
        _own_job_row(job_id, user_id)
        return store.get(job_id).model_dump()

    @app.post("/api/exports/{job_id}/cancel")
    def cancel_export(job_id: str, user_id: int = Depends(auth.require_user)):
        row = _own_job_row(job_id, user_id)
        job = runner.cancel(job_id)
        if job is not None:
            return job.model_dump()
        current = store.get(job_id)
        if current.status == "cancelled":
            return current.model_dump()  # R2: cancelling a cancelled job is a no-op
        if current.status == "completed" and current.delivered:
            return JSONResponse(
                status_code=409, content={"detail": "already downloaded", "job": current.model_dump()}
            )
        return JSONResponse(
            status_code=409, content={"detail": f"the export is already {current.status}", "job": current.model_dump()}
        )

    @app.get("/api/exports/{job_id}/download")
    def download_export(job_id: str, user_id: int = Depends(auth.require_user)):
        row = _own_job_row(job_id, user_id)
        path = store.archive_path(job_id)
        try:
            handle = open(path, "rb")  # opened before the claim: an fd outlives a later unlink
        except FileNotFoundError:
            handle = None
        if handle is None or not store.claim_download(job_id):
            if handle is not None:
                handle.close()
            status = store.get(job_id).status
            if status in ("cancelled", "expired", "failed"):
                raise HTTPException(410, f"the export is {status}; its archive is gone")
            if status in ("queued", "running"):
                raise HTTPException(409, "the export is not finished yet")
            raise HTTPException(410, "the archive is gone")
        project_row = db.project_row(row["project_id"])
        disposition = _content_disposition(project_row["name"] if project_row else "project", job_id)
        size = os.fstat(handle.fileno()).st_size

        def stream():
            try:
                while chunk := handle.read(1024 * 1024):
                    yield chunk
            finally:
                handle.close()

        return StreamingResponse(
            stream(),
            media_type="application/zip",
            headers={
                "Content-Disposition": disposition,
                "Content-Length": str(size),
                "Cache-Control": "no-store",
            },
        )

    # --- WebSocket ----------------------------------------------------------------
    @app.websocket("/api/ws")
    async def ws(websocket: WebSocket):
        user_id = auth.websocket_user(websocket)
        if user_id is None or getattr(app.state, "ws_blocked", False):
            await websocket.close(code=4401)
            return
        await websocket.accept()
        conn = Connection(websocket, user_id)
        hub.add(conn)
        # A (re)connecting client first gets the current state of its active jobs.
        for job in store.active_for(user_id):
            conn.queue.put_nowait(
                {
                    "type": EVENT_FOR_STATUS[job.status],
                    "job_id": job.id,
                    "project_id": job.project_id,
                    "seq": job.seq,
                    "status": job.status,
                    "progress": job.progress,
                    "stage": job.stage,
                    "message": job.message,
                    "ts": time.time() * 1000,
                }
            )
        sender = asyncio.create_task(conn.sender())

        async def heartbeat():
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                conn.queue.put_nowait({"type": "ping", "ts": time.time() * 1000})

        beat = asyncio.create_task(heartbeat())
        try:
            while True:
                await websocket.receive_text()  # clients send nothing we need; this notices closes
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            hub.remove(conn)
            beat.cancel()
            conn.queue.put_nowait(None)
            sender.cancel()

    try:
        from server.imports.api import add_import_routes
    except ImportError:  # the upload API is optional while it is being built
        add_import_routes = None
    if add_import_routes is not None:
        add_import_routes(app)

    if hooks is not None:
        from server.test_hooks import add_test_routes

        add_test_routes(app, hooks, hub, runner)

    return app


def recover_jobs(store: JobStore, runner: Runner) -> None:
    """R7: jobs left queued/running by a previous process are run again (first time) or
    marked failed with a clear message (if they already failed to finish once)."""
    for row in store.db.all("SELECT id, attempts FROM jobs WHERE status IN ('queued', 'running')"):
        store.remove_files(row["id"])
        if row["attempts"] >= 2:
            store.fail(row["id"], "Export failed: the server stopped twice while it ran. Please start it again.")
            continue
        store.db.execute("UPDATE jobs SET status = 'queued', stage = 'queued', message = 'Restarted after a server restart' WHERE id = ?", (row["id"],))
        runner.submit(row["id"])


async def expiry_loop(store: JobStore, ttl_seconds: float, stop: asyncio.Event) -> None:
    """Expire old archives now and then (R5)."""
    period = max(0.5, min(60.0, ttl_seconds / 4))
    while not stop.is_set():
        await asyncio.get_running_loop().run_in_executor(None, store.expire_old, ttl_seconds)
        try:
            await asyncio.wait_for(stop.wait(), timeout=period)
        except asyncio.TimeoutError:
            pass
