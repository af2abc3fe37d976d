"""Per-object shape metrics computed from the polygons (not from a rasterised mask).

One row per object, computed for all objects of an image at once (shapely's array functions,
numpy; ``metrics_table``). Every length is in px, or in um when a pixel size ``s`` (um/px) is given
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
import shapely
from shapely.geometry import MultiPolygon

from server.archive.feret import feret_diameters, feret_of_hulls
from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter
from server.archive.shapes import image_shapes
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
_RP = "the polygon counterpart of scikit-image regionprops"
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
SOURCE_ID_DEFINITION = (
    "the object's identity in the data it was imported from: label value (label images), mask file "
    "name (one mask per object), colour and first pixel (colour-coded masks), COCO annotation id; "
    "empty when unknown")
ID_COLUMNS: tuple[str, ...] = ("image_id", "image_file", "object_id", "source_id", "category")


def unit_suffix(kind: str, pixel_size_um: Optional[float]) -> str:
    """Column-name suffix for a metric kind: ``_px2``/``_um2`` for areas, ``_px``/``_um`` for
    lengths and positions, ``""`` for ratios."""
    unit = "um" if pixel_size_um else "px"
    return {"area": f"_{unit}2", "length": f"_{unit}", "position": f"_{unit}", "ratio": ""}[kind]


def metric_columns(pixel_size_um: Optional[float]) -> list[str]:
    """All column names of a metrics table, id columns first, units in the names."""
    return [*ID_COLUMNS, *(m.key + unit_suffix(m.kind, pixel_size_um) for m in METRICS)]


def _moment_sums(geoms: np.ndarray, origins: np.ndarray) -> np.ndarray:
    """``(n, 6)``: the integrals over each region of 1, x, y, x^2, y^2, xy (Green's theorem on
    every ring, coordinates taken relative to ``origins[i]``); exteriors add, holes subtract,
    whatever the ring's orientation. ``geoms``: ``(n,)`` non-empty polygonal geometries."""
    n = len(geoms)
    parts, part_of = shapely.get_parts(geoms, return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    ring_obj = part_of[ring_part]
    exterior = np.r_[True, ring_part[1:] != ring_part[:-1]]
    c = coords - origins[ring_obj[coord_ring]]
    # Segments join consecutive points of a ring (shapely repeats the first point at the end).
    same = coord_ring[1:] == coord_ring[:-1]
    seg_ring = coord_ring[1:][same]
    x0, y0 = c[:-1, 0][same], c[:-1, 1][same]
    x1, y1 = c[1:, 0][same], c[1:, 1][same]
    cross = x0 * y1 - x1 * y0
    terms = (
        (cross, 2.0),
        ((x0 + x1) * cross, 6.0),
        ((y0 + y1) * cross, 6.0),
        ((x0 * x0 + x0 * x1 + x1 * x1) * cross, 12.0),
        ((y0 * y0 + y0 * y1 + y1 * y1) * cross, 12.0),
        ((x0 * y1 + 2 * x0 * y0 + 2 * x1 * y1 + x1 * y0) * cross, 24.0),
    )
    per_ring = np.stack([np.bincount(seg_ring, weights=w, minlength=len(rings)) / d for w, d in terms])
    sign = np.where((per_ring[0] >= 0) == exterior, 1.0, -1.0)
    return np.stack([np.bincount(ring_obj, weights=row * sign, minlength=n) for row in per_ring], axis=1)


def _ellipse_axes_of(geoms: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Moments about the bounds' centre keep the sums well conditioned far from the origin.
    origins = np.column_stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2])
    area, sx, sy, sxx, syy, sxy = _moment_sums(geoms, origins).T
    positive = area > 0
    safe = np.where(positive, area, 1.0)
    cx, cy = sx / safe, sy / safe
    a, c, b = sxx / safe - cx * cx, syy / safe - cy * cy, sxy / safe - cx * cy
    # Eigenvalues of the 2x2 covariance [[a, b], [b, c]] in closed form.
    mean, half = (a + c) / 2, np.hypot((a - c) / 2, b)
    major = 4 * np.sqrt(np.maximum(mean + half, 0.0))
    minor = 4 * np.sqrt(np.maximum(mean - half, 0.0))
    return np.where(positive, major, 0.0), np.where(positive, minor, 0.0)


def ellipse_axes(geom: MultiPolygon) -> tuple[float, float]:
    """``(major, minor)`` axis lengths in px of the ellipse with the same second central moments
    as the region (exact polygon moments; holes count negative). ``(0, 0)`` for no area."""
    if geom.is_empty:
        return 0.0, 0.0
    major, minor = _ellipse_axes_of(np.array([geom], dtype=object), np.array([geom.bounds]))
    return float(major[0]), float(minor[0])


def _at_most_one_by_rounding(values: np.ndarray) -> np.ndarray:
    return np.where((values > 1.0) & (values < 1.0 + 1e-9), 1.0, values)


def metrics_table(geoms: np.ndarray, area: Optional[np.ndarray] = None) -> np.ndarray:
    """``(n, len(METRICS))`` float64: every metric of ``METRICS`` in px units, in that order,
    of each geometry in the ``(n,)`` object array ``geoms`` (valid polygonal geometries, as
    ``to_shapely`` makes them); a row of NaN where a geometry has no area, or its hull or
    Feret diameters are undefined (a sliver that collapses to a segment at float precision).
    ``area`` (optional): the geometries' areas, if already known. See ``METRICS``."""
    n = len(geoms)
    out = np.full((n, len(METRICS)), np.nan)
    if n == 0:
        return out
    area = shapely.area(geoms) if area is None else area
    live = ~shapely.is_empty(geoms) & (area > 0)
    hulls = np.full(n, None, dtype=object)
    hulls[live] = shapely.convex_hull(geoms[live])
    live &= shapely.get_type_id(hulls) == shapely.GeometryType.POLYGON
    if not live.any():
        return out
    idx = np.flatnonzero(live)
    g, hull = geoms[idx], hulls[idx]
    a = area[idx]
    perimeter = shapely.length(g)
    bounds = shapely.bounds(g)
    feret = feret_of_hulls(hull)
    major, minor = _ellipse_axes_of(g, bounds)
    centroid = shapely.get_coordinates(shapely.centroid(g))
    width, height = bounds[:, 2] - bounds[:, 0], bounds[:, 3] - bounds[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {
            "area": a,
            "perimeter": perimeter,
            "equivalent_diameter": np.sqrt(4 * a / math.pi),
            "circularity": 4 * math.pi * a / perimeter**2,
            "feret_max": feret[:, 0],
            "feret_min": feret[:, 1],
            "feret_orthogonal": feret[:, 2],
            "feret_aspect_ratio": np.where(feret[:, 1] > 0, feret[:, 0] / feret[:, 1], math.inf),
            "major_axis_length": major,
            "minor_axis_length": minor,
            "extent": a / (width * height),
            # A convex shape's own hull can come out a rounding error larger (or shorter)
            # than the shape, which must not read as 1.0000000000000002. Solidity is <= 1
            # by definition; convexity only for one connected part (separate parts have a
            # hull longer than their outlines), so only a rounding error above 1 is cut.
            "convexity": _at_most_one_by_rounding(shapely.length(hull) / perimeter),
            "solidity": np.minimum(a / shapely.area(hull), 1.0),
            "bbox_width": width,
            "bbox_height": height,
            "centroid_x": centroid[:, 0],
            "centroid_y": centroid[:, 1],
        }
    values = np.column_stack([columns[m.key] for m in METRICS])
    values[np.isnan(feret[:, 0])] = np.nan
    out[idx] = values
    return out


def geometry_metrics(geom: MultiPolygon) -> Optional[dict[str, float]]:
    """Every metric of ``METRICS`` in px units, keyed by ``Metric.key``; ``None`` when the
    geometry has no area. See ``METRICS`` for the definitions."""
    row = metrics_table(np.array([geom], dtype=object))[0]
    if np.isnan(row[0]):
        return None
    return {m.key: v for m, v in zip(METRICS, row.tolist())}


def _scale_factors(pixel_size_um: Optional[float]) -> np.ndarray:
    s = pixel_size_um or 1.0
    factor = {"area": s * s, "length": s, "position": s, "ratio": 1.0}
    return np.array([factor[m.kind] for m in METRICS])


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
    rows = image_metric_rows(ImageRecord(image.id, image.file_name, image.width, image.height, None, [obj]),
                             image_file, pixel_size_um, [])
    return dict(zip(metric_columns(pixel_size_um), rows[0])) if rows else None


def image_metric_rows(
    image: ImageRecord, image_file: str, pixel_size_um: Optional[float], warnings: list[str],
    table: Optional[np.ndarray] = None,
) -> list[list]:
    """The rows of one image's objects in order, as lists in ``metric_columns`` order (values
    in the units of ``pixel_size_um``); objects without area are skipped with a warning.
    ``table``: the objects' px-unit ``metrics_table`` if already computed
    (``annotation_pass.shaped_steps``)."""
    if table is None:
        shapes = image_shapes(image.objects)
        table = metrics_table(shapes.geoms, shapes.area)
    values = table * _scale_factors(pixel_size_um)
    rows = []
    for obj, ok, vals in zip(image.objects, ~np.isnan(values[:, 0]), values.tolist()):
        if ok:
            rows.append([image.id, image_file, obj.id, obj.source, obj.category, *vals])
        else:
            warnings.append(f"metrics: image {image.file_name!r} object {obj.id} skipped: no area")
    return rows


def image_rows(
    image: ImageRecord, image_file: str, pixel_size_um: Optional[float], warnings: list[str],
    progress=None,
) -> Iterator[dict]:
    """The rows of one image's objects in order (dicts, see ``object_row``); objects without
    area are skipped with a warning. ``progress(done, total)`` is called every 25 objects (it
    may raise to cancel)."""
    names = metric_columns(pixel_size_um)
    total = len(image.objects)
    for index, row in enumerate(image_metric_rows(image, image_file, pixel_size_um, warnings)):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        yield dict(zip(names, row))


def column_docs(pixel_size_um: Optional[float]) -> list[dict]:
    """``[{name, unit, definition, source}]`` for every column, in order."""
    unit = "um" if pixel_size_um else "px"
    docs = [
        {"name": "image_id", "unit": "", "definition": "project image id", "source": "project"},
        {"name": "image_file", "unit": "", "definition": "image name in the archive's images/ folder",
         "source": "export"},
        {"name": "object_id", "unit": "", "definition": "project object id", "source": "project"},
        {"name": "source_id", "unit": "", "definition": SOURCE_ID_DEFINITION, "source": "import"},
        {"name": "category", "unit": "", "definition": "object category", "source": "project"},
    ]
    units = {"area": f"{unit}^2", "length": unit, "position": unit, "ratio": ""}
    for m in METRICS:
        docs.append({"name": m.key + unit_suffix(m.kind, pixel_size_um), "unit": units[m.kind],
                     "definition": m.definition, "source": m.source})
    return docs

__all__ = [
    "METRICS", "Metric", "ID_COLUMNS", "metric_columns", "unit_suffix", "geometry_metrics",
    "feret_diameters", "ellipse_axes", "scale_metrics", "object_row", "image_rows", "image_metric_rows",
    "metrics_table", "column_docs",
    "CsvMetricsWriter", "XlsxMetricsWriter", "JsonMetricsWriter",
]
