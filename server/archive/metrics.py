"""Per-object shape metrics computed from the polygons (not from a rasterised mask).

One row per object. Every length is in px, or in um when a pixel size ``s`` (um/px) is given
(lengths * s, areas * s^2); the unit is part of every column name (``area_px2``/``area_um2``,
``perimeter_px``/``perimeter_um``); ratios have no unit. Holes are subtracted from the area and
their outlines count in the perimeter; the parts of a multi-part object are measured together
(one area, one hull, one ellipse). ``METRICS`` holds each metric's definition and source; the
archive README is generated from it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
from shapely.geometry import MultiPolygon

from server.archive.geometry import to_shapely
from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter
from server.domain import ImageRecord, SegObject


@dataclass(frozen=True)
class Metric:
    """``key`` (column name without unit), ``kind`` (``area``, ``length``, ``position`` or
    ``ratio``: how it scales with the pixel size), ``definition`` and ``source``."""

    key: str
    kind: str
    definition: str
    source: str


_SHAPELY = "shapely (GEOS) on the polygons"
_ISO = "ISO 9276-6:2008 shape descriptors"
_CALIPERS = "ISO 9276-6:2008 Feret diameters, by rotating calipers on the convex hull (Toussaint 1983)"
_RP = "scikit-image regionprops"
METRICS: tuple[Metric, ...] = (
    Metric("area", "area", "A: polygon area, holes subtracted, parts added", _SHAPELY),
    Metric("perimeter", "length", "P: total outline length, exteriors plus holes", _SHAPELY),
    Metric("equivalent_diameter", "length", "diameter of the circle of area A: sqrt(4A/pi)",
           f"{_RP} equivalent_diameter_area"),
    Metric("circularity", "ratio", "4*pi*A/P^2 (1 for a circle)", "ImageJ 'Circ.' (isoperimetric quotient)"),
    Metric("feret_max", "length", "largest distance between two hull vertices (maximum caliper width)", _CALIPERS),
    Metric("feret_min", "length", "smallest caliper width over all directions (attained normal to a hull edge)",
           _CALIPERS),
    Metric("feret_orthogonal", "length", "caliper width perpendicular to the feret_max direction", _CALIPERS),
    Metric("feret_aspect_ratio", "ratio", "feret_max / feret_min (>= 1; ISO 9276-6's aspect ratio is its inverse)",
           _CALIPERS),
    Metric("major_axis_length", "length",
           "4*sqrt(l1): major axis of the ellipse with the same second central moments "
           "(l1 >= l2: eigenvalues of the area covariance matrix)",
           f"{_RP} axis_major_length, from exact polygon moments (Green's theorem)"),
    Metric("minor_axis_length", "length", "4*sqrt(l2): minor axis of that ellipse",
           f"{_RP} axis_minor_length, from exact polygon moments"),
    Metric("extent", "ratio", "A / (bbox_width * bbox_height)", f"{_RP} extent"),
    Metric("convexity", "ratio", "convex hull perimeter / P (1 for a convex shape)", _ISO),
    Metric("solidity", "ratio", "A / convex hull area (1 for a convex shape)", f"{_ISO}; {_RP} solidity"),
    Metric("bbox_width", "length", "width of the axis-aligned bounding box of the polygons", _SHAPELY),
    Metric("bbox_height", "length", "height of the axis-aligned bounding box of the polygons", _SHAPELY),
    Metric("centroid_x", "position", "x of the area centroid (holes accounted), from the image's left edge",
           _SHAPELY),
    Metric("centroid_y", "position", "y of the area centroid, from the image's top edge", _SHAPELY),
)
ID_COLUMNS: tuple[str, ...] = ("image_id", "image_file", "object_id", "category")


def unit_suffix(kind: str, pixel_size_um: Optional[float]) -> str:
    """Column-name suffix for a metric kind: ``_px2``/``_um2`` for areas, ``_px``/``_um`` for
    lengths and positions, ``""`` for ratios."""
    unit = "um" if pixel_size_um else "px"
    return {"area": f"_{unit}2", "length": f"_{unit}", "position": f"_{unit}", "ratio": ""}[kind]


def metric_columns(pixel_size_um: Optional[float]) -> list[str]:
    """All column names of a metrics table, id columns first, units in the names."""
    return [*ID_COLUMNS, *(m.key + unit_suffix(m.kind, pixel_size_um) for m in METRICS)]


def _ring_moments(closed: np.ndarray) -> np.ndarray:
    # Signed integrals over the ring's interior of 1, x, y, x^2, y^2, xy (Green's theorem);
    # ``closed`` repeats the first point at the end, as shapely's coords do.
    x0, y0, x1, y1 = closed[:-1, 0], closed[:-1, 1], closed[1:, 0], closed[1:, 1]
    c = x0 * y1 - x1 * y0
    return np.array([
        c.sum() / 2,
        ((x0 + x1) * c).sum() / 6,
        ((y0 + y1) * c).sum() / 6,
        ((x0 * x0 + x0 * x1 + x1 * x1) * c).sum() / 12,
        ((y0 * y0 + y0 * y1 + y1 * y1) * c).sum() / 12,
        ((x0 * y1 + 2 * x0 * y0 + 2 * x1 * y1 + x1 * y0) * c).sum() / 24,
    ])


def ellipse_axes(geom: MultiPolygon) -> tuple[float, float]:
    """``(major, minor)`` axis lengths in px of the ellipse with the same second central moments
    as the region (exact polygon moments; holes count negative). ``(0, 0)`` for no area."""
    if geom.is_empty:
        return 0.0, 0.0
    # Moments about a point inside the bounds keep the sums well conditioned far from the origin.
    minx, miny, maxx, maxy = geom.bounds
    origin = np.array([(minx + maxx) / 2, (miny + maxy) / 2])
    total = np.zeros(6)
    for part in geom.geoms:
        for k, ring in enumerate((part.exterior, *part.interiors)):
            m = _ring_moments(np.asarray(ring.coords) - origin)
            # Whatever the ring's orientation: the exterior adds, a hole subtracts.
            total += m if (m[0] >= 0) == (k == 0) else -m
    area, sx, sy, sxx, syy, sxy = total
    if area <= 0:
        return 0.0, 0.0
    cx, cy = sx / area, sy / area
    cov = np.array([[sxx / area - cx * cx, sxy / area - cx * cy], [sxy / area - cx * cy, syy / area - cy * cy]])
    low, high = np.linalg.eigvalsh(cov)
    return 4 * math.sqrt(max(high, 0.0)), 4 * math.sqrt(max(low, 0.0))


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


def geometry_metrics(geom: MultiPolygon) -> Optional[dict[str, float]]:
    """Every metric of ``METRICS`` in px units, keyed by ``Metric.key``; ``None`` when the
    geometry has no area. See ``METRICS`` for the definitions."""
    if geom.is_empty or geom.area <= 0:
        return None
    area = float(geom.area)
    perimeter = float(geom.length)
    hull = geom.convex_hull
    minx, miny, maxx, maxy = geom.bounds
    if hull.geom_type != "Polygon":
        return None
    try:
        feret_max, feret_min, feret_orth = feret_diameters(list(hull.exterior.coords)[:-1])
    except ValueError:
        return None  # a sliver whose hull collapses to a segment at float precision
    major, minor = ellipse_axes(geom)
    centroid = geom.centroid
    width, height = maxx - minx, maxy - miny
    return {
        "area": area,
        "perimeter": perimeter,
        "equivalent_diameter": math.sqrt(4 * area / math.pi),
        "circularity": 4 * math.pi * area / perimeter**2,
        "feret_max": feret_max,
        "feret_min": feret_min,
        "feret_orthogonal": feret_orth,
        "feret_aspect_ratio": feret_max / feret_min if feret_min > 0 else math.inf,
        "major_axis_length": major,
        "minor_axis_length": minor,
        "extent": area / (width * height),
        "convexity": float(hull.length) / perimeter,
        "solidity": area / float(hull.area),
        "bbox_width": width,
        "bbox_height": height,
        "centroid_x": float(centroid.x),
        "centroid_y": float(centroid.y),
    }


def scale_metrics(values: dict[str, float], pixel_size_um: Optional[float]) -> dict[str, float]:
    """``values`` (px units, keyed by ``Metric.key``) as column name -> value in the units of
    ``pixel_size_um`` (um/px; None keeps px)."""
    s = pixel_size_um or 1.0
    factor = {"area": s * s, "length": s, "position": s, "ratio": 1.0}
    return {m.key + unit_suffix(m.kind, pixel_size_um): values[m.key] * factor[m.kind] for m in METRICS}


def object_row(
    image: ImageRecord, image_file: str, obj: SegObject, pixel_size_um: Optional[float]
) -> Optional[dict]:
    """One metrics row (column name -> value, see ``metric_columns``), or ``None`` if the
    object has no area."""
    values = geometry_metrics(to_shapely(obj.polygons))
    if values is None:
        return None
    row = {"image_id": image.id, "image_file": image_file, "object_id": obj.id, "category": obj.category}
    row.update(scale_metrics(values, pixel_size_um))
    return row


def image_rows(
    image: ImageRecord, image_file: str, pixel_size_um: Optional[float], warnings: list[str],
    progress=None,
) -> Iterator[dict]:
    """The rows of one image's objects in order; objects without area are skipped with a
    warning. ``progress(done, total)`` is called every 25 objects (it may raise to cancel)."""
    total = len(image.objects)
    for index, obj in enumerate(image.objects):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        row = object_row(image, image_file, obj, pixel_size_um)
        if row is None:
            warnings.append(f"metrics: image {image.file_name!r} object {obj.id} skipped: no area")
            continue
        yield row


def column_docs(pixel_size_um: Optional[float]) -> list[dict]:
    """``[{name, unit, definition, source}]`` for every column, in order."""
    unit = "um" if pixel_size_um else "px"
    docs = [
        {"name": "image_id", "unit": "", "definition": "project image id", "source": "project"},
        {"name": "image_file", "unit": "", "definition": "image name in the archive's images/ folder",
         "source": "export"},
        {"name": "object_id", "unit": "", "definition": "project object id", "source": "project"},
        {"name": "category", "unit": "", "definition": "object category", "source": "project"},
    ]
    units = {"area": f"{unit}^2", "length": unit, "position": unit, "ratio": ""}
    for m in METRICS:
        docs.append({"name": m.key + unit_suffix(m.kind, pixel_size_um), "unit": units[m.kind],
                     "definition": m.definition, "source": m.source})
    return docs

__all__ = [
    "METRICS", "Metric", "ID_COLUMNS", "metric_columns", "unit_suffix", "geometry_metrics",
    "feret_diameters", "ellipse_axes", "scale_metrics", "object_row", "image_rows", "column_docs",
    "CsvMetricsWriter", "XlsxMetricsWriter", "JsonMetricsWriter",
]
