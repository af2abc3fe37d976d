"""COCO instance segmentation annotations (the ``instances_*.json`` layout of the COCO dataset).

Source definition: the COCO data format, "Object Detection" section (cocodataset.org/#format-data)
and pycocotools' ``COCO``/``mask`` API, which is the reference reader.

Top level: ``info`` (project name, creation time), ``licenses`` (empty), ``categories``
(``{id, name, supercategory: "object"}``), ``images`` (``{id, file_name, width, height}``: the
project's image id and the image's unique name in the archive), ``annotations``.

What is written, per object (one annotation each):
- ``segmentation``: a list of polygons ``[x1, y1, x2, y2, ...]`` (one per part) in COCO's
  continuous pixel coordinates, for objects without holes. COCO polygons cannot express holes,
  so an object with at least one hole is written as an RLE mask instead: compressed RLE
  (``{"size": [height, width], "counts": "<string>"}``, pycocotools' ``encode`` format), made
  with ``pycocotools.mask`` from the rasterised parts minus their rasterised holes.
- ``iscrowd``: always 0, also for the RLE objects. In COCO ``iscrowd = 1`` marks a crowd
  *region* (many objects in one mask) that ``COCOeval`` ignores when matching; a cell with a hole
  is one object, so it must stay an ordinary instance. pycocotools' ``annToRLE``/``annToMask``
  decide polygon vs RLE from the ``segmentation`` type, not from ``iscrowd``, and the RLE is the
  same compressed form ``loadRes`` expects of results, so both readers accept it. (Loaders that
  assume "RLE implies crowd" exist; they must read the segmentation type instead.)
- ``area``: the object's exact polygon area in px^2, holes subtracted, overlapping parts counted
  once (shapely) -- not the pixel count of the rasterised mask.
- ``bbox``: ``[x, y, width, height]`` of the polygons' bounds in px (continuous coordinates).
- ``category_id``: 1-based index into the project's categories; ``id``: 1.. over the file;
  ``object_id``: the project's own object id (an extra key, ignored by pycocotools).

Polygons are written as given (coordinates rounded to 0.001 px), not clipped to the image;
pycocotools clips when it rasterises. Objects with no ring of 3 or more distinct points, or
with zero area, are skipped with a warning.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from server.archive.geometry import clean_polygons, to_shapely
from server.archive.names import ArchiveName, assign_archive_names
from server.domain import ImageRecord, ProjectRecord, SegObject

_DECIMALS = 3
Progress = Callable[[int, int], None]  # (objects done, objects total) within one image


def category_ids(project: ProjectRecord, images: Sequence[ImageRecord]) -> dict[str, int]:
    """Category name -> 1-based COCO id: the project's categories in order, then any category
    that only objects use (in order of first use), so no object is ever dropped for it.
    YOLO's 0-based class index is this id minus 1."""
    ids: dict[str, int] = {}
    for name in project.categories:
        ids.setdefault(name, len(ids) + 1)
    for image in images:
        for obj in image.objects:
            ids.setdefault(obj.category, len(ids) + 1)
    return ids


def coco_categories(ids: dict[str, int]) -> list[dict]:
    """COCO ``categories`` entries (``supercategory`` is the project-neutral ``"object"``)."""
    return [{"id": i, "name": name, "supercategory": "object"} for name, i in ids.items()]


def coco_image(image: ImageRecord, name: ArchiveName) -> dict:
    """COCO ``images`` entry: ``id`` is the project's image id, ``file_name`` the archive name."""
    return {"id": image.id, "file_name": name.file_name, "width": image.width, "height": image.height}


def _rle_with_holes(polygons: list, height: int, width: int) -> dict:
    mask = np.zeros((height, width), dtype=bool)
    for rings in polygons:
        flats = [np.asarray(r, dtype=np.float64).ravel().tolist() for r in rings]
        decoded = mask_utils.decode(mask_utils.frPyObjects(flats, height, width)).astype(bool)
        part = decoded[:, :, 0]
        for k in range(1, decoded.shape[2]):
            part &= ~decoded[:, :, k]
        mask |= part
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_annotation(
    obj: SegObject, image: ImageRecord, ann_id: int, cat_ids: dict[str, int]
) -> tuple[Optional[dict], Optional[str]]:
    """``(annotation, None)`` for one object, or ``(None, warning)`` when it is skipped as
    degenerate. See the module docstring for every field."""
    polygons = clean_polygons(obj.polygons)
    geom = to_shapely(polygons)
    if not polygons or geom.is_empty or geom.area <= 0:
        return None, f"COCO: image {image.file_name!r} object {obj.id} skipped: no area"
    if any(len(p) > 1 for p in polygons):
        segmentation: object = _rle_with_holes(polygons, image.height, image.width)
    else:
        segmentation = [
            [round(v, _DECIMALS) for point in p[0] for v in point] for p in polygons
        ]
    xs = [x for p in polygons for x, _ in p[0]]
    ys = [y for p in polygons for _, y in p[0]]
    x0, y0 = min(xs), min(ys)
    bbox = [round(v, _DECIMALS) for v in (x0, y0, max(xs) - x0, max(ys) - y0)]
    return {
        "id": ann_id,
        "image_id": image.id,
        "category_id": cat_ids[obj.category],
        "segmentation": segmentation,
        "area": round(float(geom.area), _DECIMALS),
        "bbox": bbox,
        "iscrowd": 0,
        "object_id": obj.id,
    }, None


def image_annotations(
    image: ImageRecord, first_id: int, cat_ids: dict[str, int], warnings: list[str],
    progress: Optional[Progress] = None,
) -> Iterator[dict]:
    """Annotations of one image, ids from ``first_id`` on (skipped objects use no id);
    ``progress(done, total)`` is called every 25 objects (it may raise to cancel)."""
    ann_id = first_id
    total = len(image.objects)
    for index, obj in enumerate(image.objects):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        ann, warning = coco_annotation(obj, image, ann_id, cat_ids)
        if warning:
            warnings.append(warning)
            continue
        ann_id += 1
        yield ann


def _info(project: ProjectRecord) -> dict:
    return {
        "description": project.name,
        "version": "1.0",
        "year": datetime.now(timezone.utc).year,
        "contributor": "",
        "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def iter_coco_json(
    project: ProjectRecord,
    images: Sequence[ImageRecord],
    names: Optional[dict[int, ArchiveName]] = None,
    warnings: Optional[list[str]] = None,
    on_image: Optional[Callable[[int, ImageRecord, int, int], None]] = None,
    stats: Optional[dict[str, int]] = None,
) -> Iterator[str]:
    """The COCO JSON text in chunks, one image's annotations at a time, so a large project is
    never held as one dict. ``names`` defaults to ``assign_archive_names(images)``; skip
    warnings are appended to ``warnings``. ``on_image(index, image, done, total)`` is called
    before each image and every 25 objects (it may raise to cancel; the exception propagates).
    The concatenated chunks are one JSON object equal to ``coco_dict``'s. ``stats`` (optional)
    gets ``"annotations"``: the number of annotations written."""
    names = names or assign_archive_names(images)
    warnings = warnings if warnings is not None else []
    cat_ids = category_ids(project, images)
    yield "{\n" + f'"info": {json.dumps(_info(project))},\n"licenses": [],\n'
    yield f'"categories": {json.dumps(coco_categories(cat_ids))},\n"images": ['
    for index, image in enumerate(images):
        yield ("," if index else "") + "\n" + json.dumps(coco_image(image, names[image.id]))
    yield '\n],\n"annotations": ['
    next_id, first = 1, True
    for index, image in enumerate(images):
        if on_image is not None:
            on_image(index, image, 0, len(image.objects))

        def progress(done: int, total: int, _i=index, _im=image) -> None:
            if on_image is not None:
                on_image(_i, _im, done, total)

        for ann in image_annotations(image, next_id, cat_ids, warnings, progress):
            next_id = ann["id"] + 1
            yield ("\n" if first else ",\n") + json.dumps(ann, separators=(",", ":"))
            first = False
    if stats is not None:
        stats["annotations"] = next_id - 1
    yield "\n]\n}\n"


def coco_dict(
    project: ProjectRecord,
    images: Sequence[ImageRecord],
    names: Optional[dict[int, ArchiveName]] = None,
    warnings: Optional[list[str]] = None,
) -> dict:
    """The whole COCO dataset dict (``info``, ``licenses``, ``categories``, ``images``,
    ``annotations``) for ``images`` of ``project``; for small projects and tests -- the archive
    writer streams ``iter_coco_json`` instead."""
    return json.loads("".join(iter_coco_json(project, images, names, warnings)))
