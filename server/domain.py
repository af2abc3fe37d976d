"""Plain data types of projects, images and segmented objects (server side).

Geometry convention (the COCO/pycocotools one): a point ``(x, y)`` is in continuous image
coordinates, in pixels, where pixel (column c, row r) covers ``[c, c+1) x [r, r+1)``.
So a polygon around exactly one pixel at (0, 0) is ``[(0,0), (1,0), (1,1), (0,1)]``.

- ``Ring``: a closed ring of at least 3 points, the closing point NOT repeated.
- ``Polygon``: ``[exterior, hole, hole, ...]`` (list of rings; holes optional).
- An object is one or more polygons (several for an object in separate pieces).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

Point = tuple[float, float]
Ring = list[Point]
Polygon = list[Ring]
Source = Union[int, str]


@dataclass
class SegObject:
    """One segmented object (cell, nucleus, spheroid): ``polygons`` as described above.

    ``source``: the object's identity in the data it was imported from, as the import had it,
    so results can be joined back to the user's files: the label value (integer label images),
    the mask file name (one mask file per object), ``"<colour> at (x, y)"`` with the patch's
    first pixel in reading order (colour-coded masks), or the COCO annotation id (or the
    ``source`` an exported COCO file carried). None when unknown (drawn or demo objects)."""

    id: int
    category: str
    polygons: list[Polygon]
    source: Optional[Source] = None


@dataclass
class ImageRecord:
    """One project image. ``file_name`` is the display/original name (may repeat within a
    project); ``width``/``height`` in pixels; ``path`` is where the server keeps the file
    (never sent to clients)."""

    id: int
    file_name: str
    width: int
    height: int
    path: Optional[str] = None
    objects: list[SegObject] = field(default_factory=list)


@dataclass
class ProjectRecord:
    """A project: ``pixel_size_um`` (micrometres per pixel) if known; ``synthetic`` marks
    generated demo data; ``import_warnings``: what its import reported (empty images,
    simplified outlines...), which every export of it repeats."""

    id: int
    name: str
    categories: list[str]
    pixel_size_um: Optional[float] = None
    synthetic: bool = False
    description: str = ""
    images: list[ImageRecord] = field(default_factory=list)
    import_warnings: list[str] = field(default_factory=list)
