"""COCO instance segmentation import (the ``instances_*.json`` layout).

Source definition: the COCO data format, "Object Detection" section
(cocodataset.org/#format-data), read the way pycocotools reads it:
- ``segmentation`` as a list of polygons ``[x1, y1, x2, y2, ...]`` in continuous pixel
  coordinates; the parts of one object are united (pycocotools ``merge``), so COCO polygons
  cannot carry holes. Parts are kept as given (closing point dropped); only overlapping parts
  are merged with shapely.
- ``segmentation`` as RLE, uncompressed (``counts`` a list) or compressed (``counts`` a
  string), ``size = [height, width]``: decoded with pycocotools and traced into polygons with
  holes (:func:`server.imports.masks.trace_mask`).
- ``iscrowd`` does not change how the segmentation is read (pycocotools decides by its type);
  crowd annotations are imported as ordinary objects.
- ``source`` (an extra key the hub's own COCO export writes: the object's identity in the data
  it was first imported from) is kept as the object's ``source``; without it, the annotation's
  ``id`` is.
A self-intersecting polygon is repaired with ``shapely.make_valid`` (GEOS "linework" method:
the ring is split at its crossings and every enclosed piece kept) and reported as a warning.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np
import shapely
from pycocotools import mask as mask_utils
from shapely.geometry import Polygon as ShapelyPolygon

from server.domain import ImageRecord, Polygon, SegObject
from server.guard.json_bounds import JsonBoundsError, load_json
from server.imports.bounds import (MAX_OBJECTS_PER_IMAGE, MAX_PARTS_PER_OBJECT, MAX_VERTICES_PER_RING,
                                   coordinates_problem)
from server.imports.masks import DEFAULT_MIN_IOU, DEFAULT_TOLERANCE, trace_mask
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS
from server.imports.plan import DEFAULT_MAX_FILE_BYTES, Checker, ImportPlan, absolute

MAX_SOURCE_CHARS = 1000


def _number_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def _polygonal_parts(geom) -> list[ShapelyPolygon]:
    parts = []
    for g in getattr(geom, "geoms", [geom]):
        if isinstance(g, ShapelyPolygon):
            if not g.is_empty and g.area > 0:
                parts.append(g)
        elif hasattr(g, "geoms"):
            parts.extend(_polygonal_parts(g))
    return parts


def _to_domain(poly: ShapelyPolygon) -> Polygon:
    rings = [poly.exterior, *poly.interiors]
    return [[(float(x), float(y)) for x, y in list(r.coords)[:-1]] for r in rings]


def _polygon_objects(seg: list, where: str, check: Checker) -> Optional[list[Polygon]]:
    """Domain polygons of a COCO polygon segmentation, or None with problems recorded."""
    ok = True
    rings: list[list[tuple[float, float]]] = []
    for k, flat in enumerate(seg):
        if not _number_list(flat):
            check.problem(f"{where}: polygon {k} is not a list of numbers")
            ok = False
            continue
        if len(flat) % 2:
            check.problem(f"{where}: polygon {k} has an odd number of coordinates ({len(flat)})")
            ok = False
            continue
        ring = [(float(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]
        if len(set(ring)) < 3:
            check.problem(f"{where}: polygon {k} has fewer than 3 points")
            ok = False
            continue
        rings.append(ring)
    if not ok:
        return None
    shapes: list[ShapelyPolygon] = []
    repaired = False
    for ring in rings:
        poly = ShapelyPolygon(ring)
        if poly.is_valid:
            shapes.append(poly)
        else:
            repaired = True
            shapes.extend(_polygonal_parts(shapely.make_valid(poly)))
    if repaired:
        check.warn(f"{where}: self-intersecting polygon repaired with shapely make_valid")
    if not shapes:
        check.problem(f"{where}: segmentation has no area")
        return None
    overlapping = _any_overlap(shapes)
    if overlapping:
        shapes = _polygonal_parts(shapely.union_all(shapes))
    if repaired or overlapping:
        return [_to_domain(s) for s in shapes]
    return [[r] for r in rings]  # valid and disjoint: keep the coordinates exactly as given


def _any_overlap(shapes: list[ShapelyPolygon]) -> bool:
    """True when two of ``shapes`` share area. Only pairs whose boxes meet are compared
    (shapely's STRtree): n log n in the number of parts, where comparing every pair took
    35 s for 8,000 parts."""
    if len(shapes) < 2:
        return False
    pairs = shapely.STRtree(shapes).query(shapes, predicate="intersects")
    return any(i < j and shapes[i].intersection(shapes[j]).area > 0 for i, j in pairs.T.tolist())


def _segmentation_problem(seg: list, image: ImageRecord) -> Optional[str]:
    """Why a polygon segmentation is over the bounds of ``server.imports.bounds`` (parts,
    vertices, coordinates outside ``image`` and its margin), or None."""
    if len(seg) > MAX_PARTS_PER_OBJECT:
        return f"{len(seg):,} parts, more than the limit of {MAX_PARTS_PER_OBJECT:,} per object"
    for k, flat in enumerate(seg):
        if not _number_list(flat) or len(flat) < 2:
            continue  # reported by _polygon_objects
        if len(flat) // 2 > MAX_VERTICES_PER_RING:
            return f"polygon {k} has {len(flat) // 2:,} vertices, more than the limit of {MAX_VERTICES_PER_RING:,}"
        problem = coordinates_problem(flat[: len(flat) - len(flat) % 2], image.width, image.height)
        if problem is not None:
            return f"polygon {k} {problem}"
    return None


def rle_string_counts(s: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string (pycocotools' ``rleFrString``: 6-bit
    chunks offset by 48, 0x20 = more chunks follow, 0x10 in the last chunk = negative, runs
    from the third on stored as a difference to the run two before). Raises ``ValueError``
    for characters out of range, a truncated value or a negative run -- checked here because
    pycocotools' C decoder trusts its input."""
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("truncated RLE string")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {s[p]!r} cannot occur in an RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        if x < 0:
            raise ValueError("negative run length")
        counts.append(x)
    return counts


def _rle_mask(seg: dict, height: int, width: int, where: str, check: Checker) -> Optional[np.ndarray]:
    size = seg.get("size")
    counts = seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        check.problem(f"{where}: RLE has no valid size [height, width]")
        return None
    if list(size) != [height, width]:
        check.problem(f"{where}: RLE size {size[1]}x{size[0]} (WxH) disagrees with the image's {width}x{height}")
        return None
    try:
        if isinstance(counts, list):
            if not all(isinstance(c, int) and c >= 0 for c in counts) or sum(counts) != height * width:
                raise ValueError("uncompressed counts must be non-negative integers summing to height*width")
            rle = mask_utils.frPyObjects({"size": size, "counts": counts}, height, width)
        elif isinstance(counts, str):
            if sum(rle_string_counts(counts)) != height * width:
                raise ValueError("run lengths do not add up to height*width")
            rle = {"size": size, "counts": counts.encode("ascii")}
        else:
            raise ValueError("counts must be a list or a string")
        mask = mask_utils.decode(rle).astype(bool)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        check.problem(f"{where}: RLE cannot be decoded: {exc}")
        return None
    if mask.shape != (height, width):
        check.problem(f"{where}: RLE decodes to the wrong shape {mask.shape}")
        return None
    if not mask.any():
        check.problem(f"{where}: empty mask (RLE without object pixels)")
        return None
    return mask


def _source(ann: dict) -> int | str:
    """The object's ``source``: the ``source`` key of an annotation exported by the hub (an
    integer, or a string of at most ``MAX_SOURCE_CHARS``), so a round trip keeps the identity
    of the first import; otherwise the annotation's ``id``."""
    kept = ann.get("source")
    if isinstance(kept, bool) or not isinstance(kept, (int, str)) or (isinstance(kept, str) and not
                                                                     0 < len(kept) <= MAX_SOURCE_CHARS):
        return ann["id"]
    return kept


def _inside(path: Path, folder: Path) -> bool:
    # Lexical check (both already absolute and normalised): a file_name may not climb out with
    # ".." or be absolute. Symlinks inside the folder are the folder owner's business.
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def load_coco(json_path: os.PathLike | str, images_dir: os.PathLike | str, *, name: Optional[str] = None,
              pixel_size_um: Optional[float] = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                      max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
              tolerance: float = DEFAULT_TOLERANCE) -> ImportPlan:
    """Import a COCO instance segmentation file whose images' ``file_name`` are relative to
    ``images_dir`` (see the module docstring for how segmentations are read).

    Categories come in the file's order; each annotation becomes a ``SegObject`` with the
    annotation's ``id`` and its category's name; images without annotations are kept with no
    objects. ``name`` defaults to ``info.description`` or else the JSON file's stem.

    Raises ``ImportValidationError`` listing every problem: unreadable/oversized/invalid JSON,
    JSON out of bounds (``server.guard.json_bounds``: non-finite numbers, numbers beyond
    float range, integers of more than 20 digits, nesting deeper than 64, each named by its
    path in the file), geometry out of bounds (``server.imports.bounds``: coordinates outside
    the image and its margin, too many vertices, parts or objects per image),
    missing sections or fields, duplicate ids, a missing image file or one outside
    ``images_dir``, a non-image file, an image whose size disagrees with its ``width`` /
    ``height`` (or with an RLE ``size``), an annotation for an unknown image or unknown
    category id, a polygon with fewer than 3 points or an odd coordinate count, an RLE that
    does not decode, an empty mask, a segmentation without area. Self-intersecting polygons
    are repaired (warning), not refused.
    """
    check = Checker(max_file_bytes, max_image_pixels)
    check.options(pixel_size_um, tolerance)
    json_path, images_dir = absolute(json_path), absolute(images_dir)
    data = None
    if check.file_ok(json_path, "COCO JSON"):
        try:
            data = load_json(json_path.read_bytes(), json_path.name)
        except JsonBoundsError as exc:
            for where, reason in exc.problems:
                check.problem(f"{json_path.name}: {where}: {reason}")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            check.problem(f"not a JSON file: {json_path}: {exc}")
    if data is not None and not isinstance(data, dict):
        check.problem(f"{json_path.name}: the top level is not a JSON object")
        data = None
    if not images_dir.is_dir():
        check.problem(f"missing images folder: {images_dir}")
    if data is None:
        check.raise_if_any()
    assert data is not None
    sections = {}
    for key in ("images", "annotations", "categories"):
        value = data.get(key)
        if not isinstance(value, list):
            check.problem(f"{json_path.name}: '{key}' is missing or not a list")
            value = []
        sections[key] = value

    categories: dict[int, str] = {}
    for k, cat in enumerate(sections["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            check.problem(f"category #{k}: needs an integer 'id' and a string 'name'")
        elif cat["id"] in categories:
            check.problem(f"category id {cat['id']} appears twice")
        else:
            categories[cat["id"]] = cat["name"]

    images: dict[int, ImageRecord] = {}
    for k, entry in enumerate(sections["images"]):
        fields_ok = isinstance(entry, dict) and isinstance(entry.get("id"), int) \
            and isinstance(entry.get("file_name"), str) and entry.get("file_name") \
            and all(isinstance(entry.get(f), int) and entry[f] > 0 for f in ("width", "height"))
        if not fields_ok:
            check.problem(f"image #{k}: needs an integer 'id', a 'file_name' and positive integer 'width'/'height'")
            continue
        if entry["id"] in images:
            check.problem(f"image id {entry['id']} appears twice")
            continue
        path = absolute(images_dir / entry["file_name"])
        if not _inside(path, images_dir):
            check.problem(f"image {entry['id']}: file_name {entry['file_name']!r} points outside the images folder")
            continue
        pixels = check.read(path, "image")
        if pixels is None:
            continue
        h, w = pixels.shape[:2]
        if (w, h) != (entry["width"], entry["height"]):
            check.problem(f"image size disagrees with the annotation file: {path} is {w}x{h} (WxH), "
                          f"{json_path.name} says {entry['width']}x{entry['height']}")
            continue
        images[entry["id"]] = ImageRecord(id=len(images) + 1, file_name=path.name, width=w, height=h,
                                          path=str(path))
    known_image_ids = {e.get("id") for e in sections["images"] if isinstance(e, dict)}

    per_image = Counter(ann.get("image_id") for ann in sections["annotations"] if isinstance(ann, dict))
    crowded = {image_id for image_id, count in per_image.items() if count > MAX_OBJECTS_PER_IMAGE}
    for image_id in crowded:
        shown = images[image_id].file_name if image_id in images else f"id {image_id!r}"
        check.problem(f"image {shown}: {per_image[image_id]:,} objects, more than the limit of "
                      f"{MAX_OBJECTS_PER_IMAGE:,} per image")
    seen_ann: set[int] = set()
    for k, ann in enumerate(sections["annotations"]):
        if not isinstance(ann, dict) or not isinstance(ann.get("id"), int):
            check.problem(f"annotation #{k}: needs an integer 'id'")
            continue
        where = f"annotation {ann['id']}"
        if ann["id"] in seen_ann:
            check.problem(f"{where}: id appears twice")
            continue
        seen_ann.add(ann["id"])
        image_id, cat_id, seg = ann.get("image_id"), ann.get("category_id"), ann.get("segmentation")
        bad = False
        if image_id not in known_image_ids:
            check.problem(f"{where}: unknown image id {image_id!r}")
            bad = True
        if cat_id not in categories:
            check.problem(f"{where}: unknown category id {cat_id!r}")
            bad = True
        if not seg or not isinstance(seg, (list, dict)):
            check.problem(f"{where}: no segmentation (polygons or RLE)")
            bad = True
        image = images.get(image_id)
        if bad or image is None or image_id in crowded:  # image problems were reported with the image
            continue
        if isinstance(seg, list):
            problem = _segmentation_problem(seg, image)
            if problem is not None:
                check.problem(f"{where}: {problem}")
                continue
            polygons = _polygon_objects(seg, where, check)
            if polygons is None:
                continue
            xs = [x for p in polygons for x, _ in p[0]]
            ys = [y for p in polygons for _, y in p[0]]
            if min(xs) < -1 or min(ys) < -1 or max(xs) > image.width + 1 or max(ys) > image.height + 1:
                check.warn(f"{where}: polygon reaches outside image {image.file_name} (kept as given)")
        else:
            mask = _rle_mask(seg, image.height, image.width, where, check)
            if mask is None:
                continue
            traced = trace_mask(mask, tolerance=tolerance)
            if traced.iou < DEFAULT_MIN_IOU:
                check.warn(f"{where}: traced with IoU {traced.iou:.3f} (< {DEFAULT_MIN_IOU})")
            polygons = traced.polygons
        image.objects.append(SegObject(id=ann["id"], category=categories[cat_id], polygons=polygons,
                                       source=_source(ann)))

    check.raise_if_any()
    info = data.get("info")
    described = info.get("description") if isinstance(info, dict) else None
    default_name = described.strip() if isinstance(described, str) and described.strip() else json_path.stem
    return ImportPlan(name=name or default_name, categories=list(categories.values()), images=list(images.values()),
                      source_format="coco", pixel_size_um=pixel_size_um,
                      description=f"Imported from COCO file {json_path.name}.", warnings=check.warnings)
