"""The geometry of one image's objects, computed once, with numpy and shapely's array functions.

COCO, YOLO and the metrics all start from the same steps per object: clean the rings
(``geometry.clean_ring``), build a valid shapely geometry (``geometry.to_shapely``), measure
it. ``image_shapes`` does them for all objects of an image at once; the results are the same
as those of the per-object functions in ``server.archive.geometry`` (their definitions hold,
and the tests check both agree), only without a Python loop over every point and a GEOS call
per object and step. Objects that need repair (an invalid ring, several parts to merge) go
through ``to_shapely`` itself, one by one: they are rare, and it is the definition.

Coordinates as in ``server.domain`` (COCO's continuous px); nothing here changes units.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import numpy as np
import shapely
from shapely.geometry import MultiPolygon

from server.archive.geometry import to_shapely
from server.domain import SegObject

_EMPTY = MultiPolygon()


@dataclass
class ImageShapes:
    """Per-object geometry of one image (``n`` objects, in the image's order).

    - ``polygons[i]``: object i's polygons after ``clean_polygons``: a list of polygons, each a
      list of ``(k, 2)`` float64 arrays (exterior first, then holes; closing point not repeated).
    - ``geoms``: ``(n,)`` object array of valid shapely ``MultiPolygon`` (``to_shapely``), empty
      where nothing with an area is left.
    - ``area``: ``(n,)`` px^2 of ``geoms`` (0 when empty); ``has_area``: ``(n,)`` bool, area > 0.
    - ``bounds``: ``(n, 4)`` ``(minx, miny, maxx, maxy)`` of ``geoms`` (NaN when empty).
    - ``ring_bounds``: ``(n, 4)`` the same of the cleaned exterior rings' points (what COCO's
      ``bbox`` is made of; NaN when an object has none).
    - ``holes``: ``(n,)`` bool, some cleaned polygon has a hole ring.
    - ``simple``: ``(n,)`` bool, ``geoms[i]`` is the object's single cleaned polygon as given
      (no hole, no repair, no merge): its exterior ring is the cleaned input ring.
    """

    n: int
    polygons: list[list[list[np.ndarray]]]
    geoms: np.ndarray
    area: np.ndarray
    has_area: np.ndarray
    bounds: np.ndarray
    ring_bounds: np.ndarray
    holes: np.ndarray
    simple: np.ndarray

    def part(self, start: int, stop: int) -> "ImageShapes":
        """The ``ImageShapes`` of objects ``start:stop`` alone: what ``image_shapes`` gives
        for those objects, since each object's entries depend on that object only. Lets one
        call cover the objects of several images. Copies, not views: a part kept alive must
        not keep the geometries of the whole group alive."""
        cut = slice(start, stop)
        return ImageShapes(stop - start, self.polygons[cut], self.geoms[cut].copy(), self.area[cut].copy(),
                           self.has_area[cut].copy(), self.bounds[cut].copy(), self.ring_bounds[cut].copy(),
                           self.holes[cut].copy(), self.simple[cut].copy())


def _points(flat_points: list) -> np.ndarray:
    # fromiter is ~3x faster than np.array on a list of tuples; a malformed point (not two
    # numbers) shows as a size mismatch, and np.array then raises the proper error.
    n = len(flat_points)
    xy = np.fromiter(chain.from_iterable(flat_points), np.float64)
    if xy.size != 2 * n:
        xy = np.array(flat_points, dtype=np.float64)
    return xy.reshape(n, 2)


def _segment_starts(lengths: np.ndarray) -> np.ndarray:
    return np.cumsum(lengths) - lengths


def clean_rings(xy: np.ndarray, lengths: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``geometry.clean_ring`` on many rings at once: ``xy`` ``(m, 2)`` holds the rings' points
    one ring after another, ``lengths[r]`` of ring r. Returns ``(points, ring_of, count, ok)``:
    the points kept (a point equal to the previous one of its ring is dropped, then a last
    point equal to the first), the ring of each, the number kept per ring, and whether a ring
    has 3 or more distinct points (otherwise ``clean_ring`` gives ``[]``: after both steps,
    a ring has fewer than 3 distinct points exactly when all equal its first or second)."""
    rings = len(lengths)
    ring_of = np.repeat(np.arange(rings), lengths)
    keep = np.ones(len(xy), dtype=bool)
    if len(xy) > 1:
        keep[1:] = ~((ring_of[1:] == ring_of[:-1]) & np.all(xy[1:] == xy[:-1], axis=1))
    xy, ring_of = xy[keep], ring_of[keep]
    count = np.bincount(ring_of, minlength=rings)
    start = _segment_starts(count)
    last = start + count - 1
    several = count > 1
    closing = np.zeros(rings, dtype=bool)
    closing[several] = np.all(xy[last[several]] == xy[start[several]], axis=1)
    if closing.any():
        keep = np.ones(len(xy), dtype=bool)
        keep[last[closing]] = False
        xy, ring_of = xy[keep], ring_of[keep]
        count = count - closing
        start = _segment_starts(count)
    ok = count >= 3
    if ok.any():
        first = xy[np.where(ok, start, 0)]
        second = xy[np.where(ok, start + 1, 0)]
        in_two = np.all(xy == first[ring_of], axis=1) | np.all(xy == second[ring_of], axis=1)
        ok &= np.bincount(ring_of, weights=in_two, minlength=rings) < count
    return xy, ring_of, count, ok


def image_shapes(objects: Sequence[SegObject]) -> ImageShapes:
    """The ``ImageShapes`` of ``objects`` (see the class). Raises ``ValueError`` for a point
    that is not two numbers."""
    n = len(objects)
    lengths: list[int] = []
    ring_obj: list[int] = []
    ring_poly: list[int] = []
    ring_ext: list[bool] = []
    flat: list = []
    poly_count = 0
    for i, obj in enumerate(objects):
        for polygon in obj.polygons:
            if not polygon:
                continue
            for k, ring in enumerate(polygon):
                lengths.append(len(ring))
                ring_obj.append(i)
                ring_poly.append(poly_count)
                ring_ext.append(k == 0)
                flat.extend(ring)
            poly_count += 1
    xy = _points(flat)
    r_obj = np.asarray(ring_obj, dtype=np.intp)
    r_poly = np.asarray(ring_poly, dtype=np.intp)
    r_ext = np.asarray(ring_ext, dtype=bool)
    xy, ring_of, klen, ok = clean_rings(xy, lengths)
    start = _segment_starts(klen)
    # A polygon is kept with its exterior; its degenerate holes are dropped.
    poly_ok = np.zeros(poly_count, dtype=bool)
    poly_ok[r_poly[r_ext & ok]] = True
    ring_keep = ok & poly_ok[r_poly]

    polygons: list[list[list[np.ndarray]]] = [[] for _ in range(n)]
    holes = np.zeros(n, dtype=bool)
    parts = np.zeros(n, dtype=np.intp)
    for r in np.flatnonzero(ring_keep).tolist():
        ring = xy[start[r]:start[r] + klen[r]]
        i = ring_obj[r]
        if r_ext[r]:
            polygons[i].append([ring])
            parts[i] += 1
        else:
            polygons[i][-1].append(ring)
            holes[i] = True

    # Shapely geometries, all rings and polygons in one call each.
    point_keep = ring_keep[ring_of]
    ring_index = np.cumsum(ring_keep) - 1
    kept_polys = poly_ok.nonzero()[0]
    poly_index = np.full(poly_count, -1, dtype=np.intp)
    poly_index[kept_polys] = np.arange(len(kept_polys))
    geoms = np.full(n, _EMPTY, dtype=object)
    simple = np.zeros(n, dtype=bool)
    if len(kept_polys):
        lr = shapely.linearrings(xy[point_keep], indices=ring_index[ring_of[point_keep]])
        polys = shapely.polygons(lr, indices=poly_index[r_poly[ring_keep]])
        poly_obj = r_obj[r_ext & ring_keep]
        valid = shapely.is_valid(polys)
        one = (parts[poly_obj] == 1) & valid & ~holes[poly_obj]
        # Holes are fine too as long as the polygon is valid: only repairs and merges need
        # to_shapely. ``simple`` (no holes) is the narrower YOLO fast path.
        direct = (parts[poly_obj] == 1) & valid
        if direct.any():
            objs = poly_obj[direct]
            geoms[objs] = shapely.multipolygons(polys[direct], indices=np.arange(direct.sum()))
            simple[poly_obj[one]] = True
        for i in np.unique(poly_obj[~direct]).tolist():
            geoms[i] = to_shapely(objects[i].polygons)
    area = shapely.area(geoms)
    has_area = ~shapely.is_empty(geoms) & (area > 0)
    area = np.where(has_area, area, 0.0)
    simple &= has_area
    bounds = shapely.bounds(geoms)

    ring_bounds = np.full((n, 4), np.nan)
    ext_points = point_keep & r_ext[ring_of]
    if ext_points.any():
        pts = xy[ext_points]
        owner = r_obj[ring_of[ext_points]]  # non-decreasing: objects come in order
        heads = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        who = owner[heads]
        ring_bounds[who, 0] = np.minimum.reduceat(pts[:, 0], heads)
        ring_bounds[who, 1] = np.minimum.reduceat(pts[:, 1], heads)
        ring_bounds[who, 2] = np.maximum.reduceat(pts[:, 0], heads)
        ring_bounds[who, 3] = np.maximum.reduceat(pts[:, 1], heads)
    return ImageShapes(n, polygons, geoms, area, has_area, bounds, ring_bounds, holes, simple)


def py_round(values: np.ndarray, decimals: int) -> np.ndarray:
    """``values`` rounded to ``decimals`` places exactly as Python's ``round(v, decimals)``
    rounds each (the nearest double to the correctly rounded decimal). numpy's ``round``
    scales, rounds and scales back, which can differ from it where ``v * 10**decimals`` lies a
    rounding error away from a half: those few values are rounded by Python's ``round``."""
    values = np.asarray(values, dtype=np.float64)
    out = np.round(values, decimals)
    scaled = values * 10.0**decimals
    # The product's rounding error grows with its size: widen the band with it.
    near_half = np.abs(np.abs(scaled - np.floor(scaled)) - 0.5) < 1e-6 + np.abs(scaled) * 1e-15
    if near_half.any():
        flat_out, flat_in = out.reshape(-1), values.reshape(-1)
        for k in np.flatnonzero(near_half.reshape(-1)).tolist():
            flat_out[k] = round(float(flat_in[k]), decimals)
    return out
