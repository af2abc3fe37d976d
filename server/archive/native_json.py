"""The project's own JSON (``annotations/json/project.json``), versioned, lossless.

Schema ``cellhub.project``, ``schema_version`` 1 (the pydantic models below are its definition)::

    {"schema": "cellhub.project", "schema_version": 1,
     "coordinate_convention": "...",
     "project": {"id", "name", "description", "categories", "pixel_size_um", "synthetic",
                 "import_warnings"},
     "images": [{"id", "file_name", "archive_file_name", "width", "height",
                 "objects": [{"id", "category", "source",
                              "polygons": [[[[x, y], ...], [[x, y], ...]], ...]}]}]}

``polygons`` is exactly ``SegObject.polygons``: a list of polygons, each ``[exterior, *holes]``,
each ring a list of ``[x, y]`` in px (COCO continuous coordinates, closing point not repeated),
written with full float precision so ``load_native_json`` gives back an equal ``ProjectRecord``.
``archive_file_name`` is the image's name in the archive's images folder (informative; the
server's file path is never written). ``source`` is the object's identity in the data it was
imported from (``SegObject.source``: an integer or a string, null when unknown).
"""
from __future__ import annotations

import json
from typing import Iterator, Literal, Optional, Sequence, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from server.archive.names import ArchiveName, assign_archive_names
from server.domain import ImageRecord, ProjectRecord, SegObject

SCHEMA = "cellhub.project"
SCHEMA_VERSION = 1
COORDINATES = (
    "x, y in pixels, continuous: pixel (column c, row r) covers [c, c+1) x [r, r+1); "
    "polygon = [exterior, hole, ...]; closing point not repeated"
)


class NativeObject(BaseModel):
    """One object of schema version 1."""

    model_config = ConfigDict(extra="ignore")
    id: int
    category: str
    polygons: list[list[list[tuple[float, float]]]]
    source: Optional[Union[int, str]] = None


class NativeImage(BaseModel):
    """One image of schema version 1."""

    model_config = ConfigDict(extra="ignore")
    id: int
    file_name: str
    archive_file_name: Optional[str] = None
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    objects: list[NativeObject] = Field(default_factory=list)


class NativeProjectInfo(BaseModel):
    """The project block of schema version 1."""

    model_config = ConfigDict(extra="ignore")
    id: int
    name: str
    description: str = ""
    categories: list[str]
    pixel_size_um: Optional[float] = None
    synthetic: bool = False
    import_warnings: list[str] = Field(default_factory=list)


class NativeDocument(BaseModel):
    """A whole ``project.json`` of schema version 1."""

    model_config = ConfigDict(extra="ignore")
    schema_: Literal["cellhub.project"] = Field(alias="schema")
    schema_version: Literal[1]
    project: NativeProjectInfo
    images: list[NativeImage]


def _project_block(project: ProjectRecord) -> dict:
    return {
        "id": project.id,
        "name": project.name,
        "description": project.description,
        "categories": list(project.categories),
        "pixel_size_um": project.pixel_size_um,
        "synthetic": project.synthetic,
        "import_warnings": list(project.import_warnings),
    }


def native_image(image: ImageRecord, name: Optional[ArchiveName]) -> dict:
    """The schema-1 dict of one image with its objects."""
    return {
        "id": image.id,
        "file_name": image.file_name,
        "archive_file_name": name.file_name if name else None,
        "width": image.width,
        "height": image.height,
        "objects": [
            {
                "id": obj.id,
                "category": obj.category,
                "source": obj.source,
                # As stored: the encoder writes a point tuple (x, y) as the list [x, y].
                "polygons": obj.polygons,
            }
            for obj in image.objects
        ],
    }


def iter_native_json(
    project: ProjectRecord,
    images: Sequence[ImageRecord],
    names: Optional[dict[int, ArchiveName]] = None,
    on_image=None,
) -> Iterator[str]:
    """The JSON text in chunks, one image per chunk. ``on_image(index, image)`` is called
    before each image (it may raise to cancel; the exception propagates)."""
    names = names or assign_archive_names(images)
    head = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "coordinate_convention": COORDINATES,
            "project": _project_block(project)}
    yield json.dumps(head, ensure_ascii=False)[:-1] + ',\n"images": ['
    for index, image in enumerate(images):
        if on_image is not None:
            on_image(index, image)
        prefix = ",\n" if index else "\n"
        yield prefix + orjson.dumps(native_image(image, names.get(image.id))).decode("utf-8")
    yield "\n]}\n"


def native_dict(project: ProjectRecord, images: Optional[Sequence[ImageRecord]] = None) -> dict:
    """The whole document as a dict (``images`` defaults to ``project.images``)."""
    images = project.images if images is None else images
    return json.loads("".join(iter_native_json(project, images)))


def load_native_json(data: dict | str | bytes) -> ProjectRecord:
    """Read a ``project.json`` (parsed dict, or its text) back into a ``ProjectRecord`` with its
    images and objects; ``ImageRecord.path`` is None (the file does not name server paths).
    Points come back as ``(x, y)`` tuples of float.

    Raises ``ValueError`` naming the problem for text that is not JSON, another schema, an
    unknown ``schema_version`` or a malformed document (field and reason from pydantic).
    """
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("a project.json document must be a JSON object")
    if data.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} document (schema={data.get('schema')!r})")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"unsupported schema_version {data.get('schema_version')!r}; this reader knows {SCHEMA_VERSION}"
        )
    try:
        doc = NativeDocument.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"invalid project.json at {where}: {first['msg']}") from exc
    p = doc.project
    return ProjectRecord(
        id=p.id,
        name=p.name,
        categories=list(p.categories),
        pixel_size_um=p.pixel_size_um,
        synthetic=p.synthetic,
        description=p.description,
        import_warnings=list(p.import_warnings),
        images=[
            ImageRecord(
                id=im.id,
                file_name=im.file_name,
                width=im.width,
                height=im.height,
                path=None,
                objects=[
                    SegObject(
                        id=o.id,
                        category=o.category,
                        polygons=[[[(float(x), float(y)) for x, y in ring] for ring in poly]
                                  for poly in o.polygons],
                        source=o.source,
                    )
                    for o in im.objects
                ],
            )
            for im in doc.images
        ],
    )
