"""Where an overlay's object numbers go: every number inside the image and none over another.

Greedy placement, pure (no drawing), so it can be tested on its own: first every number that
fits centred on its object's anchor point (``representative_point``, inside the object) is
put there; then each of the others, in object order, takes the nearest free place on rings
around its anchor (16 directions, rings one label height apart, up to ``MAX_RINGS`` rings), a
thin leader line then joining it to its anchor; failing that, it is tried again at smaller
sizes, down to the readable minimum ``min_size``; a number with no free place even then is
left out (the caller warns). Boxes are kept apart by ``GAP`` px and from the image's edges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in px (continuous, x right, y down)
Measure = Callable[[str, int], tuple[float, float]]  # (text, font size) -> (width, height) px

GAP = 1.0
MAX_RINGS = 8
_DIRECTIONS = [(math.cos(a), math.sin(a)) for a in (k * math.pi / 8 for k in range(16))]


@dataclass(frozen=True)
class Placed:
    """One number: ``text`` drawn at ``size`` px centred in ``box``; ``anchor`` is the point on
    its object it belongs to; ``moved``: the box does not hold the anchor (draw a leader)."""

    text: str
    size: int
    box: Box
    anchor: tuple[float, float]
    moved: bool


class _Grid:
    """Boxes on a grid of ``cell`` px, for overlap tests in constant time."""

    def __init__(self, cell: float) -> None:
        self.cell = max(cell, 1.0)
        self.cells: dict[tuple[int, int], list[Box]] = {}

    def _keys(self, box: Box):
        c = self.cell
        for i in range(int(box[0] // c), int(box[2] // c) + 1):
            for j in range(int(box[1] // c), int(box[3] // c) + 1):
                yield i, j

    def add(self, box: Box) -> None:
        for key in self._keys(box):
            self.cells.setdefault(key, []).append(box)

    def free(self, box: Box) -> bool:
        x0, y0, x1, y1 = box[0] - GAP, box[1] - GAP, box[2] + GAP, box[3] + GAP
        for key in self._keys((x0, y0, x1, y1)):
            for b in self.cells.get(key, ()):
                if x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1:
                    return False
        return True


def _box_at(x: float, y: float, w: float, h: float) -> Box:
    return (x - w / 2, y - h / 2, x + w / 2, y + h / 2)


def _inside(box: Box, width: int, height: int) -> bool:
    return box[0] >= GAP and box[1] >= GAP and box[2] <= width - GAP and box[3] <= height - GAP


def _holds(box: Box, point: tuple[float, float]) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


def _clamped(box: Box, width: int, height: int) -> Box:
    dx = max(GAP - box[0], 0.0) - max(box[2] - (width - GAP), 0.0)
    dy = max(GAP - box[1], 0.0) - max(box[3] - (height - GAP), 0.0)
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


def _candidates(anchor: tuple[float, float], w: float, h: float, width: int, height: int):
    """Boxes of ``w`` x ``h`` near ``anchor``, nearest first: centred on it, pushed inside the
    image, then on rings around it."""
    centred = _box_at(anchor[0], anchor[1], w, h)
    yield centred
    yield _clamped(centred, width, height)
    for ring in range(1, MAX_RINGS + 1):
        for dx, dy in _DIRECTIONS:
            yield _box_at(anchor[0] + dx * ring * (w / 2 + h / 2 + GAP), anchor[1] + dy * ring * (h + GAP), w, h)


def _search(anchor: tuple[float, float], w: float, h: float, width: int, height: int, grid: _Grid) -> Optional[Box]:
    for box in _candidates(anchor, w, h, width, height):
        if _inside(box, width, height) and grid.free(box):
            return box
    return None


def place_labels(anchors: Sequence[tuple[float, float]], texts: Sequence[str], measure: Measure,
                 width: int, height: int, size: int, min_size: int,
                 reserved: Sequence[Box] = ()) -> list[Optional[Placed]]:
    """A ``Placed`` per number (None where there is no room), in the order given: ``anchors``
    (px) and ``texts`` per object, ``measure(text, size)`` the box a text takes, ``size`` the
    wanted font size and ``min_size`` the smallest allowed (<= ``size``), ``reserved`` boxes
    that numbers must not cover (the legend). No two boxes overlap (``GAP`` apart) and every
    box lies inside the ``width`` x ``height`` image."""
    sizes = list(range(size, min_size - 1, -max(1, (size - min_size) // 3 or 1)))
    if sizes[-1] != min_size:
        sizes.append(min_size)
    tallest = max((measure(t, size)[1] for t in texts), default=size)
    grid = _Grid(2 * tallest)
    for box in reserved:
        grid.add(box)
    out: list[Optional[Placed]] = [None] * len(texts)
    for k, (anchor, text) in enumerate(zip(anchors, texts)):
        w, h = measure(text, size)
        box = _box_at(anchor[0], anchor[1], w, h)
        if _inside(box, width, height) and grid.free(box):
            grid.add(box)
            out[k] = Placed(text, size, box, anchor, False)
    for k, (anchor, text) in enumerate(zip(anchors, texts)):
        if out[k] is not None:
            continue
        for s in sizes:
            w, h = measure(text, s)
            box = _search(anchor, w, h, width, height, grid)
            if box is not None:
                grid.add(box)
                out[k] = Placed(text, s, box, anchor, not _holds(box, anchor))
                break
    return out
