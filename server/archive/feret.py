"""Feret (caliper) diameters of convex polygons: ISO 9276-6:2008's Feret diameters, by rotating
calipers (Toussaint 1983).

``feret_diameters`` is the definition, one hull at a time; ``feret_of_hulls`` gives the same
values for all hulls of an image at once, its walk done as array operations.
"""
from __future__ import annotations

import math

import numpy as np
import shapely


def _ccw_vertices(hull_xy) -> tuple[list[float], list[float]]:
    # Vertices counter-clockwise, without repeats a rounding error apart (an edge without a
    # direction would give the walk below a meaningless width).
    raw = [(float(x), float(y)) for x, y in hull_xy]
    if not raw:
        return [], []
    xs, ys = [p[0] for p in raw], [p[1] for p in raw]
    eps = 1e-9 * max(max(xs) - min(xs), max(ys) - min(ys))
    pts = [p for k, p in enumerate(raw) if k == 0 or math.dist(p, raw[k - 1]) > eps]
    while len(pts) > 1 and math.dist(pts[0], pts[-1]) <= eps:
        pts.pop()
    if sum(pts[k - 1][0] * pts[k][1] - pts[k][0] * pts[k - 1][1] for k in range(len(pts))) < 0:
        pts.reverse()
    return [p[0] for p in pts], [p[1] for p in pts]


def feret_diameters(hull_xy) -> tuple[float, float, float]:
    """``(feret_max, feret_min, feret_orthogonal)`` in px of a convex polygon given by its
    vertices in order (``(n, 2)`` array or point list, either orientation, closing point not
    repeated, n >= 3).

    Rotating calipers (Toussaint 1983): walking the edges in order, one pointer advances to the
    vertex farthest from the current edge (O(n) in all). The width normal to an edge is that
    vertex's distance to the edge's line, and the minimum width is attained normal to some
    edge; the diameter is the longest antipodal pair met (an edge end with the vertex opposite
    the edge). Vertices closer than 1e-9 of the hull's extent to their neighbour are merged
    first. Raises ``ValueError`` if fewer than 3 remain.
    Plain Python on purpose: hulls have tens of vertices, where numpy's per-call cost dominates.
    """
    xs, ys = _ccw_vertices(hull_xy)
    n = len(xs)
    if n < 3:
        raise ValueError("a convex polygon needs 3 distinct vertices")
    # Start the pointer at the vertex farthest from edge 0 (vertices on a straight edge would
    # otherwise leave it on a plateau next to that edge); from there it only moves forward.
    dx0, dy0 = xs[1] - xs[0], ys[1] - ys[0]
    j = max(range(n), key=lambda k: dx0 * (ys[k] - ys[0]) - dy0 * (xs[k] - xs[0]))
    best_d2, pair = -1.0, (0, 1)
    min_width = math.inf
    for i in range(n):
        i1 = i + 1 if i + 1 < n else 0
        ax, ay = xs[i], ys[i]
        dx, dy = xs[i1] - ax, ys[i1] - ay
        # h = |edge| * distance of vertex j from the edge's line (positive inside)
        h = dx * (ys[j] - ay) - dy * (xs[j] - ax)
        while True:
            j1 = j + 1 if j + 1 < n else 0
            h1 = dx * (ys[j1] - ay) - dy * (xs[j1] - ax)
            if h1 <= h:
                break
            j, h = j1, h1
        min_width = min(min_width, h / math.hypot(dx, dy))
        j1 = j + 1 if j + 1 < n else 0  # on a side parallel to the edge both ends are opposite
        for p in (i, i1):
            for q in (j, j1):
                d2 = (xs[p] - xs[q]) ** 2 + (ys[p] - ys[q]) ** 2
                if d2 > best_d2:
                    best_d2, pair = d2, (p, q)
    p, q = pair
    length = math.sqrt(best_d2)
    nx, ny = (ys[p] - ys[q]) / length, (xs[q] - xs[p]) / length
    proj = [x * nx + y * ny for x, y in zip(xs, ys)]
    return length, min_width, max(proj) - min(proj)


_PAD_LIMIT = 64  # hulls with more vertices go through the O(n) calipers, one by one
_BATCH_CELLS = 1 << 18  # hulls x vertices^2 per padded batch: a few MB per temporary


def _feret_padded(pts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(B, 3)``: ``feret_diameters`` of ``B`` convex polygons at once, given as ``(B, N, 2)``
    vertices counter-clockwise in the calipers' order (``_ccw_vertices``), ``counts[b]`` real
    ones each, the rest padding; no vertices closer than the merge distance.

    The calipers' walk, as array operations: for every edge, the vertex it stops at is the
    first (going forward) of those farthest from the edge's line; the width is that distance;
    the pairs it compares are (edge end, that vertex or the next), in walk order, and the first
    pair at the largest distance is the diameter (which one matters for ``feret_orthogonal``
    when several are equally long, as on pixel outlines). Same formulas in the same order, so
    the same values as ``feret_diameters``, without a Python loop over vertices."""
    b, size = pts.shape[:2]
    k = np.arange(size)
    real = k[None, :] < counts[:, None]
    nxt = np.where(k[None, :] + 1 < counts[:, None], k[None, :] + 1, 0)
    prev = np.where(k[None, :] > 0, k[None, :] - 1, counts[:, None] - 1)
    rows = np.arange(b)[:, None]
    x, y = pts[..., 0], pts[..., 1]
    ex, ey = x[rows, nxt] - x, y[rows, nxt] - y
    # h[b, i, j] = |edge i| * distance of vertex j from edge i's line (>= 0 inside).
    h = ex[:, :, None] * (y[:, None, :] - y[:, :, None]) - ey[:, :, None] * (x[:, None, :] - x[:, :, None])
    h = np.where(real[:, None, :], h, -np.inf)
    top = h.max(axis=2)
    farthest = h == top[:, :, None]
    first = farthest & ~np.take_along_axis(farthest, np.broadcast_to(prev[:, None, :], h.shape), axis=2)
    j = first.argmax(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):  # padding slots (not ``real``) may be 0 / 0
        width = np.where(real, top / np.hypot(ex, ey), np.inf).min(axis=1)
    j1 = np.take_along_axis(nxt, j, axis=1)
    i = np.broadcast_to(k[None, :], (b, size))
    ps = np.stack([i, i, nxt, nxt], axis=2).reshape(b, -1)
    qs = np.stack([j, j1, j, j1], axis=2).reshape(b, -1)
    d2 = (x[rows, ps] - x[rows, qs]) ** 2 + (y[rows, ps] - y[rows, qs]) ** 2
    d2 = np.where(np.repeat(real, 4, axis=1), d2, -np.inf)
    best = d2.argmax(axis=1)
    at = np.arange(b)
    p, q = ps[at, best], qs[at, best]
    length = np.sqrt(d2[at, best])
    nx = (y[at, p] - y[at, q]) / length
    ny = (x[at, q] - x[at, p]) / length
    proj = x * nx[:, None] + y * ny[:, None]
    spread = np.where(real, proj, -np.inf).max(axis=1) - np.where(real, proj, np.inf).min(axis=1)
    return np.column_stack([length, width, spread])


def feret_of_hulls(hulls: np.ndarray) -> np.ndarray:
    """``(n, 3)`` ``(feret_max, feret_min, feret_orthogonal)`` of an ``(n,)`` array of shapely
    convex hull polygons; NaN where a hull has fewer than 3 distinct vertices (where
    ``feret_diameters`` raises)."""
    n = len(hulls)
    out = np.full((n, 3), np.nan)
    coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(hulls), return_index=True)
    if not len(coords):
        return out
    closing = np.r_[owner[1:] != owner[:-1], True]  # shapely repeats each ring's first point
    pts, owner = coords[~closing], owner[~closing]
    count = np.bincount(owner, minlength=n)
    start = np.cumsum(count) - count
    has = count > 0
    span = np.zeros(n)
    for axis in (0, 1):
        lo = np.minimum.reduceat(pts[:, axis], start[has])
        hi = np.maximum.reduceat(pts[:, axis], start[has])
        span[has] = np.maximum(span[has], hi - lo)
    # The calipers merge vertices closer than 1e-9 of the hull's extent (the previous one,
    # and the last with the first): such hulls, rare, and big ones, which would need large
    # padded arrays, go through the per-hull definition.
    prev = np.arange(len(pts)) - 1
    prev[start[has]] = (start + count - 1)[has]
    gap = np.hypot(pts[:, 0] - pts[prev, 0], pts[:, 1] - pts[prev, 1])
    merge = np.bincount(owner, weights=gap <= 1e-9 * span[owner], minlength=n) > 0
    alone = has & ((count < 3) | (count > _PAD_LIMIT) | merge)
    # _ccw_vertices' orientation test: the shoelace sum with the previous vertex.
    cw = np.bincount(owner, weights=pts[prev, 0] * pts[:, 1] - pts[:, 0] * pts[prev, 1], minlength=n) < 0
    for i in np.flatnonzero(alone).tolist():
        try:
            out[i] = feret_diameters(pts[start[i]:start[i] + count[i]])
        except ValueError:
            pass
    batch = np.flatnonzero(has & ~alone)
    batch = batch[np.argsort(count[batch], kind="stable")]
    while len(batch):
        size = int(count[batch[-1]])
        take = batch[-max(1, _BATCH_CELLS // (size * size)):]  # the largest first
        batch = batch[:len(batch) - len(take)]
        padded = np.zeros((len(take), size, 2))
        rows = np.repeat(np.arange(len(take)), count[take])
        cols = np.arange(rows.size) - np.repeat(np.cumsum(count[take]) - count[take], count[take])
        # In the calipers' order: as given, or reversed where the ring turns clockwise.
        reverse = cw[take][rows]
        source = np.repeat(start[take], count[take]) + np.where(reverse, np.repeat(count[take], count[take]) - 1 - cols, cols)
        padded[rows, cols] = pts[source]
        out[take] = _feret_padded(padded, count[take])
    return out
