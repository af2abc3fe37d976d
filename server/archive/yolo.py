"""YOLO segmentation labels in the layout and the coordinate convention Ultralytics reads.

Source definition: Ultralytics' "Instance Segmentation Datasets Overview"
(docs.ultralytics.com/datasets/segment) and its dataset loader as shipped in ultralytics
8.4.190 (``ultralytics.data.utils``: ``check_det_dataset``, ``img2label_paths``,
``verify_image_label``, ``polygon2mask``).

Layout (``YOLO_DIR``): ``data.yaml``, ``images/<name>``, ``labels/<stem>.txt``. Ultralytics
finds an image's label by replacing the last ``/images/`` of its path with ``/labels/`` and
its extension with ``.txt``, so ``labels/`` sits beside ``images/`` and the stems match.
``data.yaml``: ``path`` empty, ``train`` and ``val`` = ``images``, ``nc``, ``names``. An
empty ``path`` makes Ultralytics take the yaml's own folder as the dataset root wherever it
runs; a relative one (``.``) would be resolved from the working directory.

Label lines: one per object, ``<class> <x1> <y1> <x2> <y2> ...``, class a 0-based index into
``names``, at least 3 points, coordinates divided by the image width and height (0..1, 6
decimals). An image without objects gets an empty file (a background image).

Coordinate convention: the one YOLO's consumers rasterise with. Ultralytics' ``polygon2mask``
(and supervision's ``polygon_to_mask``) multiply a label's coordinates by the image size, cast
them to int32 and fill the polygon with OpenCV's ``fillPoly``, which fills the pixels whose
centres lie inside or ON the outline. So a vertex is a pixel index: the centre of one of the
object's border pixels. The project's polygons follow COCO's convention instead (pixel (c, r)
covers ``[c, c+1) x [r, r+1)``, see ``server.domain``; an outline traced along pixel edges
encloses exactly the object's pixel centres). Each vertex ``(x, y)`` therefore becomes the
pixel it touches on the object's side: ``round(x - 0.5 + 0.05 n_x)``, ``round(y - 0.5 + 0.05
n_y)``, where ``n`` is the sum of the unit normals of its two edges that point into the object
(``NUDGE``): a vertex on a pixel edge lies halfway between two pixel centres, and the nudge
picks the inner one. An outline along pixel edges (what mask imports make) thus fills back to
exactly its pixels; a polygon drawn freely fills, as any YOLO polygon does, the pixels its
outline runs through as well. A coordinate is then written as the smallest 6-decimal number that,
multiplied back by the image size in float32 or float64, is at least that pixel index, so the
int32 cast gives it back exactly (and so does rounding, for images under 500,000 px).

Holes and multi-part objects: a YOLO line is one polygon and has no holes. One line per
object: its parts and holes (each snapped as above: a hole's vertices move onto the object
pixels around it) are joined into one ring by zero-width bridges between their closest
vertices (``geometry.bridge_loops``; the way Ultralytics' own COCO converter
``merge_multi_segment`` joins the parts of an object). A bridge is walked once each way, so
``fillPoly`` leaves a hole's inside empty; it fills the one-pixel line of the bridge itself.

Objects reaching outside the image are clipped to it first (Ultralytics refuses a label file
with a coordinate outside 0..1). Objects with no area, or none inside the image, are skipped
with a warning. An object smaller than a pixel becomes a single pixel (its 3 points equal).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import shapely
import yaml
from shapely.geometry import box

from server.archive.geometry import bridge_loops, oriented_loops, polygonal
from server.archive.shapes import ImageShapes, image_shapes
from server.domain import ImageRecord, SegObject

YOLO_DIR = "yolo"
NUDGE = 0.05  # px: how far a vertex is moved into its object before rounding to a pixel centre
_DECIMALS = 6
_SCALE = 10 ** _DECIMALS
_PLACES = 10 ** np.arange(_DECIMALS - 1, -1, -1)  # 100000, ..., 1: the decimals, first to last


def micro_text(units: np.ndarray) -> str:
    """``"%.6f "`` of ``units / 10**6`` for each integer of ``units`` (any shape, C order), as one
    string of 9 characters per value. Made by integer arithmetic on all values at once (printf
    per value is slow on 25,000 objects). Raises ``ValueError`` for a value outside
    0..10**6."""
    k = np.asarray(units, dtype=np.int64).ravel()
    if not np.all((k >= 0) & (k <= _SCALE)):
        raise ValueError("YOLO coordinates must be finite and within 0..1")
    chars = np.empty((len(k), _DECIMALS + 3), dtype=np.uint8)
    chars[:, 0] = 48 + k // _SCALE  # "0" or "1"
    chars[:, 1] = 46  # "."
    chars[:, 2:2 + _DECIMALS] = 48 + (k % _SCALE)[:, None] // _PLACES % 10
    chars[:, -1] = 32  # " "
    return chars.tobytes().decode("ascii")


def fixed6_text(values: np.ndarray) -> str:
    """``"%.6f "`` of each value in [0, 1] (any shape, C order) as one string of 9 characters
    per value (``micro_text`` of the values rounded to 6 decimals). A ``-0.0`` is written
    ``0.000000``. Raises ``ValueError`` for a value outside 0..1 or not finite."""
    scaled = np.rint(np.asarray(values, dtype=np.float64).ravel() * _SCALE)
    if not np.all((scaled >= 0) & (scaled <= _SCALE)):  # NaN fails both
        raise ValueError("YOLO coordinates must be finite and within 0..1")
    return micro_text(scaled.astype(np.int64))


def micro_units(index: np.ndarray, size: int) -> np.ndarray:
    """The label coordinates (in 10**-6 of ``size``) of pixel indices ``index`` (ints in
    0..size-1): for each, the smallest ``k`` with ``k / 10**6 * size >= index`` both in float64
    and in float32 arithmetic (what a loader computes), so that truncating gives ``index``."""
    index = np.asarray(index, dtype=np.int64)
    k = -(-index * _SCALE // size)  # exact ceiling division
    for _ in range(3):
        value = k / _SCALE
        short = (value * size < index) | (value.astype(np.float32) * np.float32(size) < index.astype(np.float32))
        if not short.any():
            break
        k = k + short
    return k


def _left_normals(d: np.ndarray) -> np.ndarray:
    length = np.hypot(d[:, 0], d[:, 1])
    length[length == 0] = 1.0
    return np.column_stack([-d[:, 1], d[:, 0]]) / length[:, None]


def pixel_loops(xy: np.ndarray, lengths: Sequence[int], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Snap loops to pixel indices (the module docstring's rule). ``xy`` ``(m, 2)`` holds the
    loops' points one loop after another (``lengths[r]`` of loop r), in COCO's continuous
    px, each loop with its object on the left of its edges (exteriors counter-clockwise and
    holes clockwise in the x-right/y-up sense). Returns ``(points, counts)``: int64 pixel
    indices clipped into the image, a point equal to the one before it in its loop dropped
    (every loop keeps at least one), and the points kept per loop."""
    lengths = np.asarray(lengths, dtype=np.int64)
    loop = np.repeat(np.arange(len(lengths)), lengths)
    start = np.cumsum(lengths) - lengths
    at = np.arange(len(xy))
    first, last = start[loop], start[loop] + lengths[loop] - 1
    before = np.where(at == first, last, at - 1)
    after = np.where(at == last, first, at + 1)
    inward = _left_normals(xy - xy[before]) + _left_normals(xy[after] - xy)
    snapped = np.rint(xy - 0.5 + NUDGE * inward)
    np.clip(snapped[:, 0], 0, width - 1, out=snapped[:, 0])
    np.clip(snapped[:, 1], 0, height - 1, out=snapped[:, 1])
    keep = np.ones(len(xy), dtype=bool)
    if len(xy) > 1:
        keep[1:] = (loop[1:] != loop[:-1]) | np.any(snapped[1:] != snapped[:-1], axis=1)
    return snapped[keep].astype(np.int64), np.bincount(loop[keep], minlength=len(lengths))


def _loops(image: ImageRecord, shapes: ImageShapes) -> tuple[list[Optional[list[np.ndarray]]], dict[int, str]]:
    """Per object: its loops (px, object on the left) or None, and why not (by index)."""
    n = shapes.n
    out: list[Optional[list[np.ndarray]]] = [None] * n
    skipped: dict[int, str] = {}
    w, h = image.width, image.height
    b = shapes.bounds
    with np.errstate(invalid="ignore"):
        inside = (b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w) & (b[:, 3] <= h)
    # A single polygon without holes inside the image is its own loop once oriented.
    fast = np.flatnonzero(shapes.simple & inside)
    if len(fast):
        oriented = shapely.orient_polygons(shapely.get_geometry(shapes.geoms[fast], 0), exterior_cw=False)
        coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(oriented), return_index=True)
        heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        for k, (a, e) in enumerate(zip(heads.tolist(), np.r_[heads[1:], len(coords)].tolist())):
            out[int(fast[k])] = [coords[a:e - 1]]
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
        out[i] = oriented_loops(clipped)
    return out, skipped


def image_lines(image: ImageRecord, class_index: dict[str, int], warnings: list[str],
                shapes: Optional[ImageShapes] = None) -> list[str]:
    """The label lines of one image's objects in order (no newlines); skipped objects (no
    area, outside the image) add a warning instead. ``shapes``: the image's ``ImageShapes``
    if already computed."""
    if image.width <= 0 or image.height <= 0:
        for obj in image.objects:
            warnings.append(f"YOLO: image {image.file_name!r} object {obj.id} skipped: image has no size")
        return []
    shapes = shapes if shapes is not None else image_shapes(image.objects)
    loops, skipped = _loops(image, shapes)
    present = [i for i, found in enumerate(loops) if found is not None]
    for i, why in skipped.items():
        warnings.append(f"YOLO: image {image.file_name!r} object {image.objects[i].id} skipped: {why}")
    if not present:
        return []
    flat = [loop for i in present for loop in loops[i]]  # type: ignore[union-attr]
    points, counts = pixel_loops(np.concatenate(flat), [len(loop) for loop in flat], image.width, image.height)
    pieces = np.split(points, np.cumsum(counts)[:-1])
    rings, at = [], 0
    for i in present:
        k = len(loops[i])  # type: ignore[arg-type]
        ring = pieces[at] if k == 1 else bridge_loops(pieces[at:at + k])
        at += k
        if len(ring) < 3:  # a single pixel or a line of pixels: still 3 points, as YOLO needs
            ring = np.concatenate([ring, np.repeat(ring[-1:], 3 - len(ring), axis=0)])
        rings.append(ring)
    lengths = [len(r) for r in rings]
    allxy = np.concatenate(rings)
    units = np.column_stack([micro_units(allxy[:, 0], image.width), micro_units(allxy[:, 1], image.height)])
    text = micro_text(units)
    width = 2 * (_DECIMALS + 3)  # characters of one point
    lines, start = [], 0
    for i, length in zip(present, lengths):
        obj = image.objects[i]
        lines.append(f"{class_index[obj.category]} " + text[width * start:width * (start + length) - 1])
        start += length
    return lines


def yolo_line(obj: SegObject, image: ImageRecord, class_index: int) -> tuple[Optional[str], Optional[str]]:
    """``(line, None)`` for one object (no trailing newline), or ``(None, warning)`` if skipped.

    ``class_index`` is the 0-based class; ``image.width``/``height`` (px) normalise x/y.
    """
    single = ImageRecord(image.id, image.file_name, image.width, image.height, None, [obj])
    warnings: list[str] = []
    lines = image_lines(single, {obj.category: class_index}, warnings)
    return (lines[0], None) if lines else (None, warnings[0])


def label_text(image: ImageRecord, class_index: dict[str, int], warnings: list[str],
               shapes: Optional[ImageShapes] = None) -> str:
    """The whole ``<stem>.txt`` of one image (``""`` for no objects; ``\\n`` after every line).

    ``class_index`` maps category name -> 0-based class; skip warnings go to ``warnings``.
    """
    return "".join(line + "\n" for line in image_lines(image, class_index, warnings, shapes))


def classes_txt(class_names: Sequence[str]) -> str:
    """``classes.txt``: one class name per line, line k = class k."""
    return "".join(f"{name}\n" for name in class_names)


def data_yaml(class_names: Sequence[str]) -> str:
    """Ultralytics' ``data.yaml`` for ``YOLO_DIR``: an empty ``path`` (the yaml's folder is the
    dataset root), ``train`` and ``val`` = ``images`` (there is no split: both are every
    image), ``nc`` and ``names`` as ``{index: name}``; a comment says why ``path`` is empty."""
    doc = {"path": "", "train": "images", "val": "images", "nc": len(class_names),
           "names": {i: name for i, name in enumerate(class_names)}}
    return (
        "# Ultralytics YOLO segmentation dataset (docs.ultralytics.com/datasets/segment). path is\n"
        "# empty on purpose: Ultralytics then takes this file's folder as the dataset root, from any\n"
        "# working directory (a relative path such as '.' is resolved from the working directory).\n"
        "# train and val are the same images: the archive has no split.\n"
        + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
    )
