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
  ``object_id``: the project's own object id; ``source``: the object's identity in the data it
  was imported from (``SegObject.source``: label value, mask file name, colour and first
  pixel, or COCO annotation id; null when unknown). Both are extra keys, which pycocotools
  and COCO tools ignore; the hub's COCO import reads ``source`` back.

Coordinate convention: pycocotools'. Polygons are written as given (coordinates rounded to
0.001 px), not clipped to the image; pycocotools rasterises them (``frPyObjects``) by pixel
centre, so an outline traced along pixel edges gives back exactly the pixels it was traced
from (``tests/archive/test_archive_conventions.py`` checks it on the real data). Objects with no ring of 3 or more distinct points, or
with zero area, are skipped with a warning.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import orjson
from pycocotools import mask as mask_utils

from server.archive.names import ArchiveName, assign_archive_names
from server.archive.shapes import ImageShapes, image_shapes, py_round
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


def rle_counts(counts: bytes) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``: 6-bit
    groups from ``'0'`` on, 5 value bits each, a continuation bit, sign-extended; from the
    third run on, each is stored as its difference to the run two before)."""
    runs: list[int] = []
    p, end = 0, len(counts)
    while p < end:
        value, shift, more = 0, 0, True
        while more:
            c = counts[p] - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def _toggles(rle: dict) -> np.ndarray:
    """Where an RLE mask changes value, in column-major pixel order (it starts at 0)."""
    return np.cumsum(rle_counts(rle["counts"])[:-1])


def _rle_with_holes(polygons: list, height: int, width: int) -> dict:
    """Compressed RLE of the parts minus their holes: each ring rasterised by pycocotools
    (``frPyObjects``, as before), then combined as runs, not as pixels, so the cost follows the
    outline rather than the image size (a 4k x 4k image would take ~100 ms a hole decoded).
    The runs are exactly those ``encode`` finds in the decoded masks (the tests compare)."""
    n = height * width
    parts = [[_toggles(r) for r in mask_utils.frPyObjects(
        [np.asarray(r, dtype=np.float64).ravel().tolist() for r in rings], height, width)] for rings in polygons]
    # Pieces of the pixel order on which every ring's mask is constant; the value of a mask on
    # a piece is the parity of its changes up to the piece's start.
    starts = np.unique(np.concatenate([np.zeros(1, dtype=np.int64), *(t for part in parts for t in part)]))
    starts = starts[starts < n]
    inside = np.zeros(len(starts), dtype=bool)
    for rings in parts:
        values = [np.searchsorted(t, starts, side="right") % 2 == 1 for t in rings]
        piece = values[0]
        for hole in values[1:]:
            piece = piece & ~hole
        inside |= piece
    changes = starts[np.flatnonzero(np.r_[inside[0], inside[1:] != inside[:-1]])] if n else starts
    runs = np.diff(np.concatenate([[0], changes, [n]])).tolist()
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": runs}, height, width)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def coco_annotation(
    obj: SegObject, image: ImageRecord, ann_id: int, cat_ids: dict[str, int]
) -> tuple[Optional[dict], Optional[str]]:
    """``(annotation, None)`` for one object, or ``(None, warning)`` when it is skipped as
    degenerate. See the module docstring for every field."""
    warnings: list[str] = []
    single = ImageRecord(image.id, image.file_name, image.width, image.height, None, [obj])
    anns = list(image_annotations(single, ann_id, cat_ids, warnings))
    return (anns[0], None) if anns else (None, warnings[0])


def image_annotations(
    image: ImageRecord, first_id: int, cat_ids: dict[str, int], warnings: list[str],
    progress: Optional[Progress] = None, shapes: Optional[ImageShapes] = None,
) -> Iterator[dict]:
    """Annotations of one image, ids from ``first_id`` on (skipped objects use no id);
    ``progress(done, total)`` is called every 25 objects (it may raise to cancel). ``shapes``:
    the image's ``ImageShapes`` if already computed."""
    shapes = shapes if shapes is not None else image_shapes(image.objects)
    total = len(image.objects)
    # Rounded once for the whole image: Python's round() per coordinate costs ~2 us each.
    exteriors = [p[0] for polygons in shapes.polygons for p in polygons]
    flat = py_round(np.concatenate(exteriors), _DECIMALS).ravel().tolist() if exteriors else []
    rb = shapes.ring_bounds
    boxes = py_round(np.column_stack([rb[:, 0], rb[:, 1], rb[:, 2] - rb[:, 0], rb[:, 3] - rb[:, 1]]),
                     _DECIMALS).tolist()
    areas = py_round(shapes.area, _DECIMALS).tolist()
    ann_id, at = first_id, 0
    for index, obj in enumerate(image.objects):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        polygons = shapes.polygons[index]
        segmentation: object = []
        for rings in polygons:
            size = 2 * len(rings[0])
            segmentation.append(flat[at:at + size])  # type: ignore[attr-defined]
            at += size
        if not polygons or not shapes.has_area[index]:
            warnings.append(f"COCO: image {image.file_name!r} object {obj.id} skipped: no area")
            continue
        if shapes.holes[index]:
            segmentation = _rle_with_holes(polygons, image.height, image.width)
        yield {
            "id": ann_id,
            "image_id": image.id,
            "category_id": cat_ids[obj.category],
            "segmentation": segmentation,
            "area": areas[index],
            "bbox": boxes[index],
            "iscrowd": 0,
            "object_id": obj.id,
            "source": obj.source,
        }
        ann_id += 1


def _info(project: ProjectRecord) -> dict:
    return {
        "description": project.name,
        "version": "1.0",
        "year": datetime.now(timezone.utc).year,
        "contributor": "",
        "date_created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


COCO_TAIL = "\n]\n}\n"


def iter_coco_head(project: ProjectRecord, images: Sequence[ImageRecord], names: dict[int, ArchiveName],
                   cat_ids: dict[str, int]) -> Iterator[str]:
    """The COCO JSON text up to the first annotation (``info``, ``licenses``, ``categories``,
    ``images``, the opening of ``annotations``), in chunks; ``COCO_TAIL`` closes it."""
    yield "{\n" + f'"info": {json.dumps(_info(project))},\n"licenses": [],\n'
    yield f'"categories": {json.dumps(coco_categories(cat_ids))},\n"images": ['
    for index, image in enumerate(images):
        yield ("," if index else "") + "\n" + orjson.dumps(coco_image(image, names[image.id])).decode("utf-8")
    yield '\n],\n"annotations": ['


def annotations_text(annotations: Sequence[dict], first: bool) -> str:
    """The JSON text of ``annotations`` inside the ``annotations`` array, one per line;
    ``first``: nothing was written into the array before them. ``""`` for none."""
    if not annotations:
        return ""
    return ("\n" if first else ",\n") + b",\n".join(map(orjson.dumps, annotations)).decode("ascii")


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
    yield from iter_coco_head(project, images, names, cat_ids)
    next_id = 1
    for index, image in enumerate(images):
        if on_image is not None:
            on_image(index, image, 0, len(image.objects))

        def progress(done: int, total: int, _i=index, _im=image) -> None:
            if on_image is not None:
                on_image(_i, _im, done, total)

        annotations = list(image_annotations(image, next_id, cat_ids, warnings, progress))
        if annotations:
            yield annotations_text(annotations, next_id == 1)
            next_id = annotations[-1]["id"] + 1
    if stats is not None:
        stats["annotations"] = next_id - 1
    yield COCO_TAIL


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
