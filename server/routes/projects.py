"""Projects: the list (what the user may see), one project with its images and object counts,
image thumbnails; rename/describe/publish (``PATCH``) and delete, for owners and editors.

Every route that names a project answers 404 for a project the user may not see, exactly as
for an unknown id (R9, ``deps.visible_project``).
"""
from __future__ import annotations

import json
from typing import Optional

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from server import auth, project_store
from server.routes.deps import RowId, managed_project, services, visible_project
from server.routes.errors import validation_detail
from server.services import Services

router = APIRouter()


class ProjectChanges(BaseModel):
    """``PATCH /api/projects/{id}``: any of ``name`` (1-200 characters, not blank),
    ``description`` (at most 5000 characters) and ``public``; nothing else."""

    model_config = ConfigDict(extra="forbid")
    name: Optional[str] = Field(default=None, min_length=1, max_length=200)
    description: Optional[str] = Field(default=None, max_length=5000)
    public: Optional[bool] = None

    @field_validator("name")
    @classmethod
    def _not_blank(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _something(self) -> "ProjectChanges":
        if not self.model_fields_set:
            raise ValueError("give at least one of name, description, public")
        return self


def project_json(svc: Services, user_id: int, project_id: int) -> dict:
    """The project as the list shows it (with ``owner`` and the user's ``access``); 404 if
    the user may not see it (any more)."""
    listed = project_store.visible_projects(svc.db, user_id, project_id)
    if not listed:
        raise HTTPException(404, f"no project {project_id}")
    return listed[0]


@router.get("/api/projects")
def projects(user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    return project_store.visible_projects(svc.db, user_id)


@router.get("/api/projects/{project_id}")
def project(project_id: RowId, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    row, _ = visible_project(svc, user_id, project_id)
    images = [
        {
            "id": r["id"],
            "file_name": r["file_name"],
            "width": r["width"],
            "height": r["height"],
            "object_count": r["object_count"],
        }
        for r in project_store.image_rows(svc.db, project_id)
    ]
    return {
        **project_json(svc, user_id, project_id),  # as listed: owner, public, the user's access
        "categories": json.loads(row["categories_json"]),
        "images": images,
        "object_count": sum(i["object_count"] for i in images),
    }


@router.patch("/api/projects/{project_id}")
def change_project(project_id: RowId, body: Optional[dict] = Body(default=None), user_id: int = Depends(auth.require_user),
                   svc: Services = Depends(services)):
    managed_project(svc, user_id, project_id)
    try:
        changes = ProjectChanges.model_validate(body if body is not None else {})
    except ValidationError as exc:
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc)})
    svc.access.update(project_id, changes.model_dump(exclude_unset=True))
    return project_json(svc, user_id, project_id)


@router.delete("/api/projects/{project_id}")
def delete_project(project_id: RowId, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    managed_project(svc, user_id, project_id)
    svc.access.delete(project_id)
    return {"deleted": project_id}


@router.get("/api/projects/{project_id}/images/{image_id}/thumbnail")
def thumbnail(project_id: RowId, image_id: RowId, user_id: int = Depends(auth.require_user),
              svc: Services = Depends(services)):
    from server.projects import thumbnail_path

    visible_project(svc, user_id, project_id)
    row = project_store.image_row(svc.db, project_id, image_id)
    if row is None:
        raise HTTPException(404, "no such image")
    path = thumbnail_path(svc.data_dir, svc.files_root, row, svc.settings.max_image_pixels)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

