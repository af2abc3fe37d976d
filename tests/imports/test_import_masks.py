"""Mask -> polygon tracing: exactness under pycocotools rasterisation, holes, pieces, tiny objects."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from server.imports.masks import mask_iou, polygons_to_mask, trace_mask

from import_helpers import label_scene


def _area(polygons) -> float:
    return sum(Polygon(p[0], p[1:]).area for p in polygons)


def test_single_pixel_is_kept_in_coco_coordinates():
    m = np.zeros((6, 6), bool)
    m[2, 3] = True
    t = trace_mask(m)
    assert t.iou == 1.0
    (poly,) = t.polygons
    xs = [x for x, _ in poly[0]]
    ys = [y for _, y in poly[0]]
    # pixel (c=3, r=2) covers [3, 4) x [2, 3)
    assert 3.0 <= min(xs) and max(xs) <= 4.0 and 2.0 <= min(ys) and max(ys) <= 3.0
    assert _area(t.polygons) == pytest.approx(1.0, abs=0.05)


def test_origin_shifts_coordinates():
    m = np.ones((3, 3), bool)
    a = trace_mask(m).polygons
    b = trace_mask(m, origin=(10, 20)).polygons
    assert [[(x + 10, y + 20) for x, y in r] for r in a[0]] == b[0]


def test_hole_piece_border_and_tiny_objects():
    lab = label_scene()
    h, w = lab.shape
    for value, pieces, holes in ((3, 1, 0), (7, 1, 1), (12, 2, 0), (20, 1, 0), (40, 1, 0)):
        t = trace_mask(lab == value)
        assert len(t.polygons) == pieces
        assert sum(len(p) - 1 for p in t.polygons) == holes
        assert all(Polygon(p[0], p[1:]).is_valid for p in t.polygons)
        assert mask_iou(polygons_to_mask(t.polygons, h, w), lab == value) >= 0.99
        assert _area(t.polygons) == pytest.approx(np.count_nonzero(lab == value), rel=0.05)
    border = trace_mask(lab == 20).polygons[0][0]
    assert min(x for x, _ in border) == 0.0  # runs along the image edge, not outside it
    assert max(y for _, y in border) == 40.0


def test_diagonal_pixels_are_separate_pieces_and_diagonal_holes_one_hole():
    m = np.zeros((5, 5), bool)
    m[1, 1] = m[2, 2] = True
    assert len(trace_mask(m).polygons) == 2
    block = np.ones((8, 8), bool)
    block[3, 3] = block[4, 4] = False
    (poly,) = trace_mask(block).polygons
    assert len(poly) == 2  # background is 8-connected: one hole of two pixels


def test_simplification_reduces_vertices_of_large_objects():
    yy, xx = np.mgrid[0:80, 0:80]
    disk = (yy - 40) ** 2 + (xx - 40) ** 2 < 30 ** 2
    rough = trace_mask(disk, tolerance=0.0)
    smooth = trace_mask(disk)
    assert smooth.tolerance == 0.5
    assert len(smooth.polygons[0][0]) < len(rough.polygons[0][0]) / 2
    assert smooth.iou >= 0.99


def test_empty_and_bad_masks_raise():
    with pytest.raises(ValueError, match="empty"):
        trace_mask(np.zeros((4, 4), bool))
    with pytest.raises(ValueError):
        trace_mask(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="tolerance"):
        trace_mask(np.ones((2, 2), bool), tolerance=-0.1)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.2, 0.8))
def test_random_masks_round_trip(seed, density):
    rng = np.random.default_rng(seed)
    m = rng.random((14, 17)) < density
    if not m.any():
        m[0, 0] = True
    t = trace_mask(m)
    assert all(Polygon(p[0], p[1:]).is_valid for p in t.polygons)
    assert mask_iou(polygons_to_mask(t.polygons, *m.shape), m) >= 0.99
