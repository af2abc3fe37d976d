"""Geometry shared by the archive writers: domain polygons <-> shapely, and single-ring bridging.

Coordinates follow ``server.domain`` (COCO's continuous pixel coordinates: pixel (c, r) covers
``[c, c+1) x [r, r+1)``). Nothing here changes units.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon
from shapely.geometry import Polygon as ShapelyPolygon
from shapely.geometry.polygon import orient

from server.domain import Polygon, Ring, SegObject


def clean_ring(ring: Ring) -> list[tuple[float, float]]:
    """``ring`` without consecutive repeated points and without a repeated closing point.

    Returns ``[]`` when fewer than 3 distinct points remain (a ring that cannot bound an area).
    """
    out: list[tuple[float, float]] = []
    for x, y in ring:
        point = (float(x), float(y))
        if not out or out[-1] != point:
            out.append(point)
    while len(out) > 1 and out[0] == out[-1]:
        out.pop()
    return out if len(set(out)) >= 3 else []


def clean_polygons(polygons: Sequence[Polygon]) -> list[list[list[tuple[float, float]]]]:
    """The object's polygons with degenerate rings dropped (see ``clean_ring``).

    A polygon whose exterior is degenerate is dropped with its holes; the result may be ``[]``.
    """
    result = []
    for polygon in polygons:
        if not polygon:
            continue
        exterior = clean_ring(polygon[0])
        if not exterior:
            continue
        holes = [h for h in (clean_ring(r) for r in polygon[1:]) if h]
        result.append([exterior, *holes])
    return result


def has_holes(polygons: Sequence[Polygon]) -> bool:
    """True if any polygon of the (cleaned) object has at least one hole ring."""
    return any(len(p) > 1 for p in clean_polygons(polygons))


def to_shapely(polygons: Sequence[Polygon]) -> MultiPolygon:
    """A valid shapely ``MultiPolygon`` of an object's polygons (holes subtracted).

    Degenerate rings are dropped; invalid input (self-intersections, holes outside their
    exterior, overlapping parts) is repaired with ``shapely.make_valid`` and only its polygonal
    part is kept; overlapping parts are merged (a pixel is counted once). Returns an empty
    ``MultiPolygon`` when nothing with an area is left.
    """
    parts = []
    for rings in clean_polygons(polygons):
        poly = ShapelyPolygon(rings[0], rings[1:])
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        parts.append(poly)
    if not parts:
        return MultiPolygon()
    geom = parts[0] if len(parts) == 1 else shapely.union_all(parts)
    return polygonal(geom)


def object_geometry(obj: SegObject) -> MultiPolygon:
    """``to_shapely(obj.polygons)``."""
    return to_shapely(obj.polygons)


def polygonal(geom) -> MultiPolygon:
    """The polygonal part of any shapely geometry as a ``MultiPolygon`` (make_valid, union and
    clipping may return collections holding lines or points; only areas are kept)."""
    polys: list[ShapelyPolygon] = []
    for part in getattr(geom, "geoms", [geom]):
        if isinstance(part, ShapelyPolygon):
            if not part.is_empty and part.area > 0:
                polys.append(part)
        elif hasattr(part, "geoms"):
            polys.extend(polygonal(part).geoms)
    return MultiPolygon(polys)


def from_shapely(geom) -> list[Polygon]:
    """Domain polygons of a shapely (Multi)Polygon: ``[[exterior, *holes], ...]``, closing
    points not repeated."""
    result: list[Polygon] = []
    for part in polygonal(geom).geoms:
        rings = [part.exterior, *part.interiors]
        result.append([[(float(x), float(y)) for x, y in list(r.coords)[:-1]] for r in rings])
    return result


def oriented_loops(geom: MultiPolygon) -> list[np.ndarray]:
    """Every ring of ``geom`` as an ``(n, 2)`` float array (closing point not repeated), parts
    largest first, each exterior followed by its holes, oriented so that the region lies on
    the left of every edge: exteriors counter-clockwise and holes clockwise in the
    x-right/y-up sense (``shapely.orient(.., 1.0)``). ``[]`` for an empty geometry."""
    loops: list[np.ndarray] = []
    for part in sorted(geom.geoms, key=lambda p: -p.area):
        part = orient(part, 1.0)
        loops.append(np.asarray(part.exterior.coords)[:-1])
        loops.extend(np.asarray(h.coords)[:-1] for h in part.interiors)
    return loops


def bridge_loops(loops: Sequence[np.ndarray]) -> np.ndarray:
    """One closed ring (closing point not repeated) tracing every loop of ``loops`` (as
    ``oriented_loops`` gives them), joined by zero-width bridges.

    Each loop is spliced into the ring so far at the closest pair of vertices: walk the ring to
    vertex i, jump to loop vertex j, walk the whole loop back to j, jump back to i. Every
    bridge is walked once each way, so it adds nothing to the winding number or to the
    even-odd crossing count: filling the ring with either rule gives the parts with their
    holes (this is how Ultralytics' ``merge_multi_segment`` joins the parts of a COCO object).
    Returns an empty ``(0, 2)`` array for no loops.
    """
    if not len(loops):
        return np.zeros((0, 2))
    ring = loops[0]
    for loop in loops[1:]:
        d2 = ((ring[:, None, :] - loop[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(int(np.argmin(d2)), d2.shape)
        rolled = np.roll(loop, -j, axis=0)
        ring = np.concatenate([ring[: i + 1], rolled, rolled[:1], ring[i:]])
    return ring
