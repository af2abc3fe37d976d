"""Persisting projects: images copied into the data directory and rows inserted, all or nothing.

The image files of a new project are first written into a staging folder under
``files/``; the rows go in inside one transaction; only when both succeeded is the folder
renamed to its final name. Any error removes the staging folder and rolls the rows back,
so a failed import leaves no orphan file and no half project.
"""
from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path
from typing import Mapping, Optional, Union

from server import accounts, project_store
from server.db import Database
from server.domain import ProjectRecord

ImageSource = Union[bytes, str, Path]
THUMBNAIL_SIDE = 256


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:100] or "image"


def persist_project(db: Database, files_root: Path, project: ProjectRecord, sources: list[ImageSource],
                    owner_id: Optional[int] = None, public: bool = False) -> int:
    """Store ``project`` with its images, owned by ``owner_id`` (default:
    ``accounts.default_owner``), private unless ``public``; ``sources[i]`` is the file content
    (bytes) or the path of ``project.images[i]``. Returns the new project id. Raises whatever
    failed (OSError, sqlalchemy.exc.SQLAlchemyError, ValueError) after undoing everything."""
    if len(sources) != len(project.images):
        raise ValueError("one image source is needed per image")
    if owner_id is None:
        owner_id = accounts.default_owner(db)
    staging = files_root / f".staging-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    final_dir = None
    try:
        rel_names = []
        for index, (image, source) in enumerate(zip(project.images, sources)):
            name = f"{index:05d}_{_safe_name(image.file_name)}"
            target = staging / name
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                shutil.copyfile(source, target)
            rel_names.append(name)
        with db.writing() as conn:
            project_id = project_store.insert_project(conn, project, owner_id, public)
            folder = f"p{project_id}-{uuid.uuid4().hex[:8]}"
            for position, (image, name) in enumerate(zip(project.images, rel_names)):
                project_store.insert_image(conn, project_id, position, image, f"{folder}/{name}")
            final_dir = files_root / folder
            staging.rename(final_dir)
        return project_id
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if final_dir is not None:
            shutil.rmtree(final_dir, ignore_errors=True)
        raise


def seed_demo_if_empty(db: Database, files_root: Path, n_images: int = 12, size: int = 512) -> None:
    """Create the synthetic demo project on first start (no projects yet); ``n_images`` images
    of ``size`` x ``size`` pixels (smaller only in tests). It belongs to the first user (see
    ``accounts.default_owner``) and is public: every signed-in user can see and export it."""
    with db.exclusive("seed-demo"):  # replicas of a cluster starting at once seed it once
        if project_store.has_projects(db):
            return
        from server.demo import generate_demo

        demo = generate_demo(n_images=n_images, size=size)
        sources = [demo.image_bytes[image.id] for image in demo.project.images]
        persist_project(db, files_root, demo.project, sources, public=True)


def thumbnail_path(data_dir: Path, files_root: Path, image_row: Mapping,
                   max_pixels: Optional[int] = None) -> Path:
    """A contrast-stretched PNG preview of an image (at most 256 px a side), made once. An
    image that cannot be previewed -- over the pixel budget (``server.image_budget``,
    ``max_pixels``, default 100 MP), unreadable, missing -- gets the shared placeholder
    instead (never an error: one bad stored image must not break the page of the project)."""
    from server.imaging import ImageReadError, preview_png, read_image

    thumbs = data_dir / "thumbnails"
    thumbs.mkdir(mode=0o700, exist_ok=True)
    path = thumbs / f"{image_row['id']}.png"
    if not path.exists():
        try:
            pixels = read_image(files_root / image_row["rel_path"], max_pixels=max_pixels)
        except (ImageReadError, ValueError, OSError, MemoryError):
            return placeholder_path(thumbs)
        tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")  # requests (replicas) making it at once
        tmp.write_bytes(preview_png(pixels, THUMBNAIL_SIDE))
        tmp.replace(path)
    return path


def placeholder_path(thumbs: Path) -> Path:
    """The thumbnail shown for an image that has none: a flat grey square, made once."""
    path = thumbs / "unavailable.png"
    if not path.exists():
        from server.imaging import encode_png

        import numpy as np

        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(encode_png(np.full((64, 64), 200, np.uint8)))
        tmp.replace(path)
    return path
