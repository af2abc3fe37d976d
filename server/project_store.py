"""Rows of projects, images and segmented objects.

Polygons are kept as JSON text (``objects.polygons_json``: a list of polygons, each a list of
rings, each a list of ``[x, y]`` points, in the convention of ``server.domain``); categories
as a JSON list (``projects.categories_json``). Rows come back as mappings
(``row["name"]``); ``image_rows`` adds each image's ``object_count``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.engine import RowMapping

from server.db import Database, utc_now_iso
from server.domain import ImageRecord, ProjectRecord, SegObject
from server.schema import images, objects, projects


def insert_project(conn: Connection, project: ProjectRecord) -> int:
    """Insert the project row (inside the caller's write transaction); its id."""
    result = conn.execute(insert(projects).values(
        name=project.name,
        description=project.description,
        categories_json=json.dumps(project.categories),
        pixel_size_um=project.pixel_size_um,
        synthetic=bool(project.synthetic),
        created_at=utc_now_iso(),
    ))
    return int(result.inserted_primary_key[0])


def insert_image(conn: Connection, project_id: int, position: int, image: ImageRecord, rel_path: str) -> int:
    """Insert one image and its objects, numbered from 1 (inside the caller's transaction); its id."""
    result = conn.execute(insert(images).values(
        project_id=project_id, position=position, file_name=image.file_name,
        width=image.width, height=image.height, rel_path=rel_path,
    ))
    image_id = int(result.inserted_primary_key[0])
    if image.objects:
        conn.execute(insert(objects), [
            {"image_id": image_id, "number": number, "category": obj.category,
             "polygons_json": json.dumps(obj.polygons, separators=(",", ":"))}
            for number, obj in enumerate(image.objects, start=1)
        ])
    return image_id


def has_projects(db: Database) -> bool:
    return db.scalar(select(projects.c.id).limit(1)) is not None


def list_projects(db: Database) -> list[dict[str, Any]]:
    """Every project, oldest first: ``{id, name, description, synthetic, pixel_size_um, image_count}``."""
    image_count = (select(func.count()).select_from(images)
                   .where(images.c.project_id == projects.c.id).scalar_subquery())
    rows = db.all(select(projects.c.id, projects.c.name, projects.c.description, projects.c.synthetic,
                         projects.c.pixel_size_um, image_count.label("image_count")).order_by(projects.c.id))
    return [
        {
            "id": r["id"],
            "name": r["name"],
            "description": r["description"],
            "synthetic": bool(r["synthetic"]),
            "pixel_size_um": r["pixel_size_um"],
            "image_count": r["image_count"],
        }
        for r in rows
    ]


def project_row(db: Database, project_id: int) -> Optional[RowMapping]:
    return db.one(select(projects).where(projects.c.id == project_id))


def image_rows(db: Database, project_id: int) -> list[RowMapping]:
    """The project's images in their order, each with its ``object_count``."""
    object_count = (select(func.count()).select_from(objects)
                    .where(objects.c.image_id == images.c.id).scalar_subquery())
    return db.all(select(images, object_count.label("object_count"))
                  .where(images.c.project_id == project_id).order_by(images.c.position))


def image_row(db: Database, project_id: int, image_id: int) -> Optional[RowMapping]:
    """Image ``image_id`` if it belongs to project ``project_id``, else None."""
    return db.one(select(images).where(images.c.id == image_id, images.c.project_id == project_id))


def image_ids(db: Database, project_id: int) -> set[int]:
    return {r["id"] for r in db.all(select(images.c.id).where(images.c.project_id == project_id))}


def load_project(db: Database, project_id: int, files_root: Path,
                 image_ids: Optional[list[int]] = None,
                 after_image: Optional[Callable[[], None]] = None) -> ProjectRecord:
    """The project with the selected images (all if ``image_ids`` is None) and their objects.
    ``after_image()`` is called after each image is read (an export's cancel check: reading
    a large project takes a second or more).

    Raises ``KeyError`` if the project does not exist."""
    row = project_row(db, project_id)
    if row is None:
        raise KeyError(project_id)
    project = ProjectRecord(
        id=row["id"],
        name=row["name"],
        categories=json.loads(row["categories_json"]),
        pixel_size_um=row["pixel_size_um"],
        synthetic=bool(row["synthetic"]),
        description=row["description"],
    )
    wanted = set(image_ids) if image_ids is not None else None
    for img in image_rows(db, project_id):
        if wanted is not None and img["id"] not in wanted:
            continue
        project.images.append(load_image(db, img, files_root))
        if after_image is not None:
            after_image()
    return project


def load_image(db: Database, img: RowMapping, files_root: Path) -> ImageRecord:
    """The image of row ``img`` with its objects; ``path`` is under ``files_root``."""
    rows = db.all(select(objects).where(objects.c.image_id == img["id"]).order_by(objects.c.number))
    return ImageRecord(
        id=img["id"],
        file_name=img["file_name"],
        width=img["width"],
        height=img["height"],
        path=str(files_root / img["rel_path"]),
        objects=[
            SegObject(
                id=o["number"],
                category=o["category"],
                polygons=[[[tuple(p) for p in ring] for ring in poly] for poly in json.loads(o["polygons_json"])],
            )
            for o in rows
        ],
    )
