"""Geometry bounds of an import: what one image may hold, and where its coordinates may lie.

Every bound keeps the work of an import, and of every export after it, proportional to
what a real dataset needs (README.md and ``server/DECISIONS.md``, "Bounds"):

- ``MAX_OBJECTS_PER_IMAGE`` (50,000 annotations or mask files of one image) and
  ``MAX_LABELS_PER_IMAGE`` (50,000 distinct values of a label image, or colour patches of a
  mask): a dense whole-slide tile holds a few thousand cells; each object is traced or
  checked on its own.
- ``MAX_BOX_COVER`` (16): the bounding boxes of one label image's objects may together cover
  at most 16 times the image, since each is traced within its box (real objects cover it
  about once; values scattered over the whole image would make the work quadratic).
- ``MAX_PARTS_PER_OBJECT`` (10,000 polygons in one COCO segmentation).
- ``MAX_VERTICES_PER_RING`` (100,000 points in one polygon; a traced outline of a 10,000 px
  wide object has about 40,000).
- Coordinates must be finite and lie within the image extended by :func:`margin` on each
  side: 10 % of the image's width (x) or height (y), at least ``MIN_MARGIN_PX`` (16 px).
  Annotation tools place outline points a little outside the border; a point further out
  is an error (or an attack: one coordinate of 1e308 made every overlay export fail).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

MAX_OBJECTS_PER_IMAGE = 50_000
MAX_LABELS_PER_IMAGE = 50_000
MAX_BOX_COVER = 16
MAX_PARTS_PER_OBJECT = 10_000
MAX_VERTICES_PER_RING = 100_000
MARGIN_FRACTION = 0.1
MIN_MARGIN_PX = 16.0


def margin(side: int) -> float:
    """How far (px) outside an image side of ``side`` pixels a coordinate may lie."""
    return max(MIN_MARGIN_PX, MARGIN_FRACTION * side)


def coordinates_problem(flat: Sequence[float], width: int, height: int) -> Optional[str]:
    """Why the flat ``[x1, y1, x2, y2, ...]`` list of a polygon on a ``width`` x ``height``
    image is out of bounds (not finite, or outside the image plus margin), or None."""
    values = np.asarray(flat, dtype=np.float64)
    xs, ys = values[0::2], values[1::2]
    if not np.isfinite(values).all():
        return "holds a coordinate that is not a finite number"
    mx, my = margin(width), margin(height)
    x_lo, x_hi, y_lo, y_hi = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    if x_lo < -mx or x_hi > width + mx or y_lo < -my or y_hi > height + my:
        worst = max((-mx - x_lo, x_lo), (x_hi - width - mx, x_hi), (-my - y_lo, y_lo), (y_hi - height - my, y_hi))[1]
        return (f"has a coordinate ({_short(worst)}) outside the image ({width}x{height}) and its margin "
                f"of {_short(mx)} px (x) and {_short(my)} px (y)")
    return None


def _short(value: float) -> str:
    return f"{value:g}" if math.isfinite(value) else str(value)
