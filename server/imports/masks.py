"""Masks <-> polygons, in the COCO pixel convention of ``server.domain``.

Tracing (:func:`trace_mask`): per 4-connected piece of the mask, the outline and the outline of
every enclosed background region (a hole; background taken 8-connected) are found with
``skimage.measure.find_contours`` at level 0.5 (marching squares) on the region upsampled
k times (nearest neighbour; k = 4 for pieces under 200 px, else 2), then mapped to COCO's
continuous coordinates (pixel (c, r) covers ``[c, c+1) x [r, r+1)``). So the outline follows
the pixel edges and only cuts 1/(2k) px off each corner: its area is the pixel count to within
1/(8k^2) px^2 per corner (tracing at 1x cuts half a pixel off: a 1-pixel object would become
a 0.5 px^2 diamond). It contains exactly the mask's pixel centres, so filling it by pixel centre
(as pycocotools does) gives the mask back. The 4/8 choice is the one
``find_contours(fully_connected="low")`` makes for the object, so pieces, holes and contours
agree.

Simplification: ``shapely`` ``simplify(tolerance, preserve_topology=True)`` (Douglas-Peucker
that keeps rings valid and holes inside), default tolerance 0.5 px. The result is rasterised
back with pycocotools (:func:`polygons_to_mask`) and accepted if its IoU with the source mask
is >= ``min_iou`` (0.99) and its area is within 5 % of the pixel count; otherwise the
tolerance is halved, and finally simplification is reduced to dropping collinear vertices only
(tolerance 0). Only objects of a few pixels need the fallbacks. Tiny objects are never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.geometry.polygon import orient
from skimage.measure import find_contours

from server.domain import Polygon

DEFAULT_TOLERANCE = 0.5  # px
DEFAULT_MIN_IOU = 0.99
DEFAULT_MAX_AREA_ERROR = 0.05  # relative to the pixel count
_FOUR = ndimage.generate_binary_structure(2, 1)
_EIGHT = ndimage.generate_binary_structure(2, 2)
# Outlines are traced on an upsampled mask so they follow pixel edges and only cut 1/(2k) px
# off each corner (area error 1/(8k^2) px^2 per corner); at 1x a 1-pixel object would become
# a 0.5 px^2 diamond. Small objects get k = 4, larger ones k = 2 (relative error < 1 %).
_SMALL_OBJECT_PX = 200


@dataclass
class TracedMask:
    """Result of :func:`trace_mask`: the polygons, the IoU of their pycocotools rasterisation
    with the source mask, and the simplification tolerance (px) actually used."""

    polygons: list[Polygon]
    iou: float
    tolerance: float


def polygons_to_mask(polygons: Sequence[Polygon], height: int, width: int,
                     offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Rasterise domain polygons into a bool ``(height, width)`` mask with pycocotools
    (``frPyObjects`` per ring, i.e. COCO's own polygon filling), holes subtracted from their
    polygon and polygons united. ``offset = (x0, y0)`` is subtracted from every coordinate
    first (to rasterise into a crop whose top-left pixel is (x0, y0)). Rings with fewer
    than 3 points are ignored."""
    out = np.zeros((height, width), dtype=bool)
    ox, oy = offset
    for rings in polygons:
        flats = [[v for x, y in ring for v in (float(x) - ox, float(y) - oy)] for ring in rings]
        if not flats or len(flats[0]) < 6:
            continue
        flats = [f for f in flats if len(f) >= 6]
        decoded = mask_utils.decode(mask_utils.frPyObjects(flats, height, width)).astype(bool)
        part = decoded[:, :, 0].copy()
        for k in range(1, decoded.shape[2]):
            part &= ~decoded[:, :, k]
        out |= part
    return out


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks of the same shape (1.0 if both are empty)."""
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _outline(region: np.ndarray, x0: float, y0: float, fully_connected: str, k: int) -> np.ndarray:
    """The outline ``(n, 2)`` (x, y) of one connected bool ``region`` (with a background
    border) whose pixel (0, 0) is image pixel (x0, y0), traced on the ``k``-times upsampled
    region; collinear vertices dropped (lossless)."""
    big = np.repeat(np.repeat(region, k, axis=0), k, axis=1).astype(np.float32)
    contour = max(find_contours(big, 0.5, fully_connected=fully_connected), key=len)[:-1]
    step = np.diff(contour, axis=0, append=contour[:1])
    turn = step[:, 0] * np.roll(step, 1, axis=0)[:, 1] - step[:, 1] * np.roll(step, 1, axis=0)[:, 0]
    contour = contour[np.abs(turn) > 1e-9]
    # Sub-pixel u covers [u/k, (u+1)/k) of the original: its centre is (u + 0.5) / k.
    return (contour[:, ::-1] + 0.5) / k + (x0, y0)


def _raw_polygons(mask: np.ndarray, x0: float, y0: float) -> list[ShapelyPolygon]:
    """Unsimplified outlines of ``mask`` (bool, already padded by one background pixel; its
    pixel (0, 0) sits at image pixel (x0, y0))."""
    pieces, n = ndimage.label(mask, structure=_FOUR)
    result = []
    for i, sl in enumerate(ndimage.find_objects(pieces), start=1):
        # keep one pixel of background around the piece so every contour closes
        r0, r1 = max(sl[0].start - 1, 0), min(sl[0].stop + 1, mask.shape[0])
        c0, c1 = max(sl[1].start - 1, 0), min(sl[1].stop + 1, mask.shape[1])
        piece = pieces[r0:r1, c0:c1] == i
        filled = ndimage.binary_fill_holes(piece, structure=_EIGHT)
        k = 4 if np.count_nonzero(piece) < _SMALL_OBJECT_PX else 2
        exterior = _outline(filled, x0 + c0, y0 + r0, "low", k)
        holes_mask = filled & ~piece
        holes = []
        if holes_mask.any():
            hole_labels, _ = ndimage.label(holes_mask, structure=_EIGHT)
            for j, hs in enumerate(ndimage.find_objects(hole_labels), start=1):
                hr0, hc0 = hs[0].start - 1, hs[1].start - 1  # holes never touch the crop edge
                hole = np.pad(hole_labels[hs] == j, 1)
                holes.append(_outline(hole, x0 + c0 + hc0, y0 + r0 + hr0, "high", k))
        result.append(orient(ShapelyPolygon(exterior, holes), 1.0))
    return result


def _to_domain(poly: ShapelyPolygon) -> Polygon:
    rings = [poly.exterior, *poly.interiors]
    return [[(float(x), float(y)) for x, y in list(r.coords)[:-1]] for r in rings]


def _simplified(raw: list[ShapelyPolygon], tolerance: float) -> list[Polygon]:
    out = []
    for poly in raw:
        simple = poly.simplify(tolerance, preserve_topology=True)
        if not isinstance(simple, ShapelyPolygon) or simple.is_empty or not simple.is_valid:
            simple = poly.simplify(0.0, preserve_topology=True)
        out.append(_to_domain(orient(simple, 1.0)))
    return out


def trace_mask(mask: np.ndarray, origin: tuple[int, int] = (0, 0), *,
               tolerance: float = DEFAULT_TOLERANCE, min_iou: float = DEFAULT_MIN_IOU,
               max_area_error: float = DEFAULT_MAX_AREA_ERROR) -> TracedMask:
    """Polygons of one object's bool mask (see the module docstring for the method).

    ``mask`` is ``(H, W)``, truthy = object; ``origin = (x0, y0)`` is the image pixel of
    ``mask[0, 0]`` (pass a crop's corner to trace a crop). Returns one polygon
    ``[exterior, *holes]`` per 4-connected piece (an object in several pieces gives several
    polygons), exteriors counter-clockwise in x-right/y-up terms (``shapely orient(.., 1.0)``),
    coordinates in image pixels. A simplification is accepted when the pycocotools
    rasterisation has IoU >= ``min_iou`` with the mask and the polygon area is within
    ``max_area_error`` (relative) of the pixel count; otherwise the tolerance is halved, and
    finally only collinear vertices are dropped. Raises ``ValueError`` for an empty mask or a
    non-2-D array, or a negative tolerance.
    """
    if not tolerance >= 0:
        raise ValueError("tolerance must be >= 0")
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    if not m.any():
        raise ValueError("empty mask: the object has no pixels")
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    crop = np.pad(m[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 1)
    x0, y0 = origin[0] + cols[0] - 1, origin[1] + rows[0] - 1
    raw = _raw_polygons(crop, x0, y0)
    pixels = int(np.count_nonzero(crop))
    traced = None
    for tol in dict.fromkeys((float(tolerance), tolerance / 2.0, 0.0)):
        polygons = _simplified(raw, tol)
        back = polygons_to_mask(polygons, crop.shape[0], crop.shape[1], offset=(x0, y0))
        traced = TracedMask(polygons, float(mask_iou(back, crop)), tol)
        area = sum(ShapelyPolygon(p[0], p[1:]).area for p in polygons)
        if traced.iou >= min_iou and abs(area - pixels) <= max_area_error * pixels:
            break
    assert traced is not None
    return traced


def mask_to_polygons(mask: np.ndarray, origin: tuple[int, int] = (0, 0), *,
                     tolerance: float = DEFAULT_TOLERANCE) -> list[Polygon]:
    """``trace_mask(mask, origin, tolerance=tolerance).polygons``: the domain polygons of one
    object's mask."""
    return trace_mask(mask, origin, tolerance=tolerance).polygons
