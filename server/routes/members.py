"""Members of a project (R9): ``GET/POST /api/projects/{id}/members`` and
``DELETE /api/projects/{id}/members/{username}``.

The list is for the owner and members (a reader of a public project gets 403); adding a
member or changing a role is for the owner and editors; removing one too, and any member may
remove themselves (leave). A project the user may not see is a 404 (``deps.visible_project``).
"""
from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server import auth, member_store
from server.routes.deps import MANAGERS, RowId, managed_project, services, visible_project
from server.routes.errors import unprocessable, validation_detail
from server.services import Services
from server.sharing import ShareError, member_id

router = APIRouter()


class MemberBody(BaseModel):
    """``POST .../members``: ``{username, role}``, role ``viewer`` (default) or ``editor``."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    role: str = "viewer"


@router.get("/api/projects/{project_id}/members")
def list_members(project_id: RowId, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    _, access = visible_project(svc, user_id, project_id)
    if access == "public":
        raise HTTPException(403, "only the owner and the members of this project see who else is a member")
    return member_store.members(svc.db, project_id)


@router.post("/api/projects/{project_id}/members")
def add_member(project_id: RowId, body: Optional[dict] = Body(default=None),
               user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    managed_project(svc, user_id, project_id)
    try:
        member = MemberBody.model_validate(body if body is not None else {})
    except ValidationError as exc:
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc)})
    try:
        outcome = svc.access.share(project_id, member.username.strip(), member.role)
    except ShareError as exc:
        return unprocessable(exc.field, exc.reason)
    return JSONResponse(status_code=201 if outcome == "added" else 200,
                        content={"username": member.username.strip(), "role": member.role})


@router.delete("/api/projects/{project_id}/members/{username}")
def remove_member(project_id: RowId, username: str, user_id: int = Depends(auth.require_user),
                  svc: Services = Depends(services)):
    _, access = visible_project(svc, user_id, project_id)
    target = member_id(svc.db, project_id, username)
    if access not in MANAGERS and target != user_id:
        raise HTTPException(403, "only the owner and editors of this project can remove other members")
    if target is None:
        raise HTTPException(404, f"{username} is not a member of this project")
    svc.access.unshare(project_id, target)
    return {"removed": username}
