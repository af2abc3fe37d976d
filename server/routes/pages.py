"""The page (``/``, ``/?project=ID``), the sign-in page and the page for an unknown project.

A page's inline scripts carry this response's CSP nonce (``server.guard.headers``), put in
before any data is inserted, so inserted text can never gain it."""
from __future__ import annotations

import html
from typing import Optional
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from server import auth, project_store
from server.guard.headers import nonce_page
from server.guard.next_path import safe_next
from server.page_assets import boot_manifest
from server.routes.deps import services
from server.services import Services

router = APIRouter()


def no_such_project(asked: str, projects: list[dict]) -> HTMLResponse:
    """404 page for ``/?project=<asked>`` when there is no such project the user may see (a
    stale link, a typo, a project not shared with them): it says so and links the projects
    they may see, instead of showing another one."""
    items = "".join(f'<li><a href="/?project={p["id"]}">{html.escape(p["name"])}</a></li>' for p in projects)
    body = (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>No such project</title>"
            f"<h1>No project {html.escape(asked)} here</h1>"
            + (f"<p>Open one of these projects:</p><ul>{items}</ul>" if projects else "<p>There are no projects yet.</p>"))
    return HTMLResponse(body, status_code=404, headers={"Cache-Control": "no-store"})


@router.get("/", response_class=HTMLResponse)
def index(request: Request, project: Optional[str] = None, svc: Services = Depends(services)):
    user_id = auth.session_user(svc.db, request.cookies.get(auth.SESSION_COOKIE))
    if user_id is None:
        # Back to the project that was asked for, once signed in.
        target = "/signin" if project is None else "/signin?" + urlencode({"next": f"/?project={project}"})
        return RedirectResponse(target, status_code=303)
    projects = project_store.visible_projects(svc.db, user_id)  # R9: never another user's
    if project is None:
        chosen = projects[0] if projects else None
    else:
        chosen = next((p for p in projects if str(p["id"]) == project.strip()), None)
        if chosen is None:
            return no_such_project(project, projects)
    page = nonce_page(svc.page.index_template, request.state.csp_nonce)  # first: nothing inserted gets the nonce
    page = page.replace("{{PROJECT_ID}}", str(chosen["id"] if chosen else ""))
    page = page.replace("{{PROJECT_NAME}}", html.escape(chosen["name"] if chosen else "No project yet"))
    page = page.replace(
        "{{PROJECT_NOTE}}", html.escape(chosen["description"] if chosen and chosen["synthetic"] else "")
    )
    offered = svc.page.snapshot.offered(request.headers.get("accept-encoding"))
    page = page.replace("{{BOOT}}", boot_manifest(svc.page.bytecode, svc.page.wheel_names,
                                                  chosen["id"] if chosen else None, offered))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@router.get("/signin", response_class=HTMLResponse)
def signin(next: str = "", svc: Services = Depends(services)):
    """The sign-in page; ``next`` (where to go once signed in) only if it is a path on this
    site (``server.guard.next_path``), else ``/``."""
    page = svc.page.signin_page.replace("{{NEXT}}", html.escape(safe_next(next), quote=True))
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
