"""Projects: the list, one project with its images and object counts, image thumbnails."""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from server import auth, project_store
from server.routes.deps import RowId, services
from server.services import Services

router = APIRouter()


def project_or_404(svc: Services, project_id: int):
    """The project's row; 404 if there is none."""
    row = project_store.project_row(svc.db, project_id)
    if row is None:
        raise HTTPException(404, f"no project {project_id}")
    return row


@router.get("/api/projects")
def projects(user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    return project_store.list_projects(svc.db)


@router.get("/api/projects/{project_id}")
def project(project_id: RowId, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    row = project_or_404(svc, project_id)
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
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "synthetic": bool(row["synthetic"]),
        "pixel_size_um": row["pixel_size_um"],
        "categories": json.loads(row["categories_json"]),
        "images": images,
        "object_count": sum(i["object_count"] for i in images),
    }


@router.get("/api/projects/{project_id}/images/{image_id}/thumbnail")
def thumbnail(project_id: RowId, image_id: RowId, user_id: int = Depends(auth.require_user),
              svc: Services = Depends(services)):
    from server.projects import thumbnail_path

    row = project_store.image_row(svc.db, project_id, image_id)
    if row is None:
        raise HTTPException(404, "no such image")
    path = thumbnail_path(svc.data_dir, svc.files_root, row, svc.settings.max_image_pixels)
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})
