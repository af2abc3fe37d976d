"""YOLO segmentation labels in the layout Ultralytics reads (docs.ultralytics.com/datasets/segment).

Source definition: Ultralytics' "Instance Segmentation Datasets Overview" and its label reader
``ultralytics.data.utils.verify_image_label``: one ``<image stem>.txt`` per image, one line per
object ``<class> <x1> <y1> <x2> <y2> ...``, class a 0-based index into ``names`` of
``data.yaml``, coordinates normalised by the image width/height to 0..1, no header, no comments.
An image without objects gets an empty file (background image).

Holes and multi-part objects: a YOLO line is one polygon and has no holes. We keep one line per
object (one instance, as in the other formats) and join its parts and holes into a single ring
with zero-width bridges between closest vertices (``geometry.bridged_ring``; the way Ultralytics'
own COCO converter ``merge_multi_segment`` joins the parts of a multi-polygon object). A bridge
is walked once each way, so filling the ring (cv2.fillPoly in Ultralytics, or any even-odd or
non-zero rasteriser) gives back the parts with their holes left empty.

The geometry is first repaired (``to_shapely``) and clipped to the image rectangle, because
Ultralytics rejects a whole label file with a coordinate outside 0..1. Coordinates are written
with 6 decimals (1e-6 of the image size). Objects with nothing left (no area inside the image,
or fewer than 3 distinct points after rounding) are skipped with a warning.

Ultralytics finds a label by replacing the last ``/images/`` of the image path with
``/labels/``: ``labels/`` must sit beside ``images/``. ``data.yaml`` therefore names the image
folder relative to itself (``images_dir``) and the archive README says where to put ``labels/``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import shapely
import yaml
from shapely.geometry import box

from server.archive.geometry import bridged_ring, polygonal
from server.archive.shapes import ImageShapes, clean_rings, image_shapes
from server.domain import ImageRecord, SegObject

_DECIMALS = 6
_SCALE = 10 ** _DECIMALS
_PLACES = 10 ** np.arange(_DECIMALS - 1, -1, -1)  # 100000, ..., 1: the decimals, first to last


def fixed6_text(values: np.ndarray) -> str:
    """``"%.6f "`` of each value, as one string of 9 characters per value: ``values`` (any
    shape, read in C order) are in [0, 1] and already rounded to 6 decimals, as the label
    coordinates are. Made by integer arithmetic on all values at once: printf per value costs
    about 0.3 s of an export of 25,000 objects. A ``-0.0`` is written ``0.000000``. Raises
    ``ValueError`` for a value outside 0..1 or not finite (which this text cannot hold)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64).ravel() * _SCALE)
    if not np.all((scaled >= 0) & (scaled <= _SCALE)):  # NaN fails both
        raise ValueError("YOLO coordinates must be finite and within 0..1")
    k = scaled.astype(np.int64)
    chars = np.empty((len(k), _DECIMALS + 3), dtype=np.uint8)
    chars[:, 0] = 48 + k // _SCALE  # "0" or "1"
    chars[:, 1] = 46  # "."
    chars[:, 2:2 + _DECIMALS] = 48 + (k % _SCALE)[:, None] // _PLACES % 10
    chars[:, -1] = 32  # " "
    return chars.tobytes().decode("ascii")


def yolo_line(obj: SegObject, image: ImageRecord, class_index: int) -> tuple[Optional[str], Optional[str]]:
    """``(line, None)`` for one object (no trailing newline), or ``(None, warning)`` if skipped.

    ``class_index`` is the 0-based class; ``image.width``/``height`` (px) normalise x/y.
    """
    single = ImageRecord(image.id, image.file_name, image.width, image.height, None, [obj])
    warnings: list[str] = []
    lines = image_lines(single, {obj.category: class_index}, warnings)
    return (lines[0], None) if lines else (None, warnings[0])


def _rings(image: ImageRecord, shapes: ImageShapes) -> tuple[list[Optional[np.ndarray]], dict[int, str]]:
    """Per object: the single ring to write (px, ``(k, 2)``) or None, and why not (by index)."""
    n = shapes.n
    out: list[Optional[np.ndarray]] = [None] * n
    skipped: dict[int, str] = {}
    w, h = image.width, image.height
    b = shapes.bounds
    with np.errstate(invalid="ignore"):
        inside = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
    # An object inside the image needs no clipping (GEOS would return the same area, only
    # starting elsewhere); a single polygon without holes is its own ring once oriented.
    fast = np.flatnonzero(shapes.simple & inside)
    if len(fast):
        oriented = shapely.orient_polygons(shapely.get_geometry(shapes.geoms[fast], 0), exterior_cw=False)
        coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(oriented), return_index=True)
        heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        for k, (a, e) in enumerate(zip(heads.tolist(), np.r_[heads[1:], len(coords)].tolist())):
            out[int(fast[k])] = coords[a:e - 1]
    frame = box(0, 0, w, h)
    for i in range(n):
        if out[i] is not None:
            continue
        if not shapes.has_area[i]:
            skipped[i] = "no area"
            continue
        geom = shapes.geoms[i]
        clipped = geom if inside[i] else polygonal(geom.intersection(frame))
        if clipped.is_empty:
            skipped[i] = "outside the image"
            continue
        out[i] = bridged_ring(clipped)
    return out, skipped


def image_lines(image: ImageRecord, class_index: dict[str, int], warnings: list[str],
                shapes: Optional[ImageShapes] = None) -> list[str]:
    """The label lines of one image's objects in order (no newlines); skipped objects (no
    area, outside the image, degenerate once normalised) add a warning instead. ``shapes``:
    the image's ``ImageShapes`` if already computed."""
    if image.width <= 0 or image.height <= 0:
        for obj in image.objects:
            warnings.append(f"YOLO: image {image.file_name!r} object {obj.id} skipped: image has no size")
        return []
    shapes = shapes if shapes is not None else image_shapes(image.objects)
    rings, skipped = _rings(image, shapes)
    present = [i for i, r in enumerate(rings) if r is not None]
    if not present:
        warnings.extend(f"YOLO: image {image.file_name!r} object {image.objects[i].id} skipped: {why}"
                        for i, why in skipped.items())
        return []
    lengths = np.array([len(rings[i]) for i in present])  # type: ignore[arg-type]
    allxy = np.concatenate([rings[i] for i in present])  # type: ignore[misc]
    norm = np.clip(np.round(allxy / np.array([image.width, image.height], dtype=np.float64), _DECIMALS), 0.0, 1.0)
    # As clean_ring does, on the normalised points: a ring that collapses is left out.
    norm, _owner, count, enough = clean_rings(norm, lengths)
    start = (np.cumsum(count) - count).tolist()
    count = count.tolist()
    text = fixed6_text(norm)
    width = 2 * (_DECIMALS + 3)  # characters of one point
    slot = {i: k for k, i in enumerate(present)}
    lines = []
    for i, obj in enumerate(image.objects):
        k = slot.get(i)
        if k is None or not enough[k]:
            why = skipped.get(i, "degenerate after normalising (smaller than 1e-6 of the image)")
            warnings.append(f"YOLO: image {image.file_name!r} object {obj.id} skipped: {why}")
            continue
        lines.append(f"{class_index[obj.category]} " + text[width * start[k]:width * (start[k] + count[k]) - 1])
    return lines


def label_text(image: ImageRecord, class_index: dict[str, int], warnings: list[str],
               shapes: Optional[ImageShapes] = None) -> str:
    """The whole ``<stem>.txt`` of one image (``""`` for no objects; ``\n`` after every line).

    ``class_index`` maps category name -> 0-based class; skip warnings go to ``warnings``.
    """
    return "".join(line + "\n" for line in image_lines(image, class_index, warnings, shapes))


def classes_txt(class_names: Sequence[str]) -> str:
    """``classes.txt``: one class name per line, line k = class k."""
    return "".join(f"{name}\n" for name in class_names)


def data_yaml(class_names: Sequence[str], images_dir: str = "images") -> str:
    """Ultralytics ``data.yaml``: ``train``/``val`` = ``images_dir`` (relative to the yaml's
    folder, which Ultralytics uses as dataset root when ``path`` is absent), ``nc`` and
    ``names`` as ``{index: name}``. There is no split: train and val are the same images."""
    doc = {
        "train": images_dir,
        "val": images_dir,
        "nc": len(class_names),
        "names": {i: name for i, name in enumerate(class_names)},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
