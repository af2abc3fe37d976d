"""Rows of projects, images and segmented objects.

Polygons are kept as JSON text (``objects.polygons_json``: a list of polygons, each a list of
rings, each a list of ``[x, y]`` points, in the convention of ``server.domain``); categories
as a JSON list (``projects.categories_json``); an object's ``source`` as JSON
(``objects.source_json``, NULL when unknown) and the import's warnings as a JSON list
(``projects.import_warnings_json``). Rows come back as mappings
(``row["name"]``); ``image_rows`` adds each image's ``object_count``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from sqlalchemy import Connection, and_, delete, func, insert, null, or_, select, update
from sqlalchemy.engine import RowMapping

from server.db import Database, utc_now_iso
from server.domain import ImageRecord, ProjectRecord, SegObject
from server.schema import ROLES, images, jobs, objects, project_members, projects, users


def insert_project(conn: Connection, project: ProjectRecord, owner_id: int, public: bool = False) -> int:
    """Insert the project row owned by ``owner_id`` (inside the caller's write transaction); its id."""
    result = conn.execute(insert(projects).values(
        name=project.name,
        description=project.description,
        categories_json=json.dumps(project.categories),
        pixel_size_um=project.pixel_size_um,
        synthetic=bool(project.synthetic),
        created_at=utc_now_iso(),
        owner_id=owner_id,
        public=public,
        import_warnings_json=json.dumps(project.import_warnings),
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
             "polygons_json": json.dumps(obj.polygons, separators=(",", ":")),
             "source_json": None if obj.source is None else json.dumps(obj.source)}
            for number, obj in enumerate(image.objects, start=1)
        ])
    return image_id


def has_projects(db: Database) -> bool:
    return db.scalar(select(projects.c.id).limit(1)) is not None


_owner = users.alias("owner")


def _listing(*where: Any, member_role: Any = None):
    image_count = (select(func.count()).select_from(images)
                   .where(images.c.project_id == projects.c.id).scalar_subquery())
    query = select(projects.c.id, projects.c.name, projects.c.description, projects.c.synthetic,
                   projects.c.pixel_size_um, projects.c.public, projects.c.owner_id,
                   _owner.c.username.label("owner"), image_count.label("image_count"),
                   (member_role if member_role is not None else null()).label("member_role"))
    return query.select_from(projects.outerjoin(_owner, _owner.c.id == projects.c.owner_id)).where(*where)


def _listed(row: Mapping, user_id: Optional[int]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "synthetic": bool(row["synthetic"]),
        "pixel_size_um": row["pixel_size_um"],
        "image_count": row["image_count"],
        "owner": row["owner"],
        "public": bool(row["public"]),
        "access": access_from(user_id, row["owner_id"], row["member_role"], row["public"]),
    }


def access_from(user_id: Optional[int], owner_id: Optional[int], member_role: Optional[str], public: bool) -> Optional[str]:
    """R9: how ``user_id`` may use a project: ``"owner"``, ``"editor"``, ``"viewer"``,
    ``"public"`` (signed in, the project is public: as a viewer) or None (not at all).
    A member's role counts before the public flag."""
    if user_id is not None and owner_id == user_id:
        return "owner"
    if member_role in ROLES:
        return member_role
    return "public" if public else None


def list_projects(db: Database) -> list[dict[str, Any]]:
    """Every project, oldest first (the CLI's view): ``{id, name, description, synthetic,
    pixel_size_um, image_count, owner, public, access: None}``."""
    return [_listed(r, None) for r in db.all(_listing().order_by(projects.c.id))]


def visible_projects(db: Database, user_id: int, project_id: Optional[int] = None) -> list[dict[str, Any]]:
    """The projects ``user_id`` may see (owned, shared with them, public), oldest first, each
    with its ``owner`` (username) and the user's ``access`` (see ``access_from``); only
    ``project_id`` when given (an empty list if the user may not see it)."""
    member = project_members.alias("me")
    query = (_listing(member_role=member.c.role)
             .outerjoin(member, and_(member.c.project_id == projects.c.id, member.c.user_id == user_id))
             .where(or_(projects.c.owner_id == user_id, member.c.user_id.is_not(None), projects.c.public.is_(True)))
             .order_by(projects.c.id))
    if project_id is not None:
        query = query.where(projects.c.id == project_id)
    return [_listed(r, user_id) for r in db.all(query)]


def project_access(db: Database, user_id: int, project_id: int) -> tuple[Optional[RowMapping], Optional[str]]:
    """``(project row, access)``; ``(None, None)`` when there is no such project, ``(row,
    None)`` when the user may not see it (callers answer both alike: 404)."""
    row = db.one(select(projects, project_members.c.role.label("member_role"))
                 .select_from(projects.outerjoin(project_members, and_(
                     project_members.c.project_id == projects.c.id, project_members.c.user_id == user_id)))
                 .where(projects.c.id == project_id))
    if row is None:
        return None, None
    return row, access_from(user_id, row["owner_id"], row["member_role"], row["public"])


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
        import_warnings=json.loads(row["import_warnings_json"]),
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
                source=None if o["source_json"] is None else json.loads(o["source_json"]),
            )
            for o in rows
        ],
    )


def update_project(db: Database, project_id: int, changes: dict[str, Any]) -> None:
    """Set ``name``, ``description`` and/or ``public`` (only those keys) of the project."""
    allowed = {key: value for key, value in changes.items() if key in ("name", "description", "public")}
    if allowed:
        db.execute(update(projects).where(projects.c.id == project_id).values(**allowed))


def delete_project(db: Database, project_id: int) -> list[RowMapping]:
    """Remove the project's rows: its jobs, members, images and objects, and itself, in one
    transaction. Returns the removed images (``id``, ``rel_path``) for their files."""
    with db.writing() as conn:
        removed = list(conn.execute(select(images.c.id, images.c.rel_path)
                                    .where(images.c.project_id == project_id)).mappings())
        conn.execute(delete(jobs).where(jobs.c.project_id == project_id))
        conn.execute(delete(project_members).where(project_members.c.project_id == project_id))
        conn.execute(delete(objects).where(objects.c.image_id.in_(
            select(images.c.id).where(images.c.project_id == project_id))))
        conn.execute(delete(images).where(images.c.project_id == project_id))
        conn.execute(delete(projects).where(projects.c.id == project_id))
    return removed
