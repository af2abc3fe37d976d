"""COCO's RLE of objects with holes is combined from run lengths; it must be exactly the RLE that
``pycocotools.mask.encode`` gives for the decoded masks (parts minus holes, united)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from archive_helpers import square
from server.archive.coco import _rle_with_holes, rle_counts
from server.archive.shapes import image_shapes


def _by_pixels(polygons, height, width):
    mask = np.zeros((height, width), dtype=bool)
    for rings in polygons:
        flats = [np.asarray(r, dtype=np.float64).ravel().tolist() for r in rings]
        decoded = mask_utils.decode(mask_utils.frPyObjects(flats, height, width)).astype(bool)
        part = decoded[:, :, 0]
        for k in range(1, decoded.shape[2]):
            part &= ~decoded[:, :, k]
        mask |= part
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_counts_decode_what_pycocotools_encodes():
    rng = np.random.default_rng(5)
    for _ in range(50):
        mask = rng.random((int(rng.integers(1, 60)), int(rng.integers(1, 60)))) < rng.random()
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        runs = rle_counts(rle["counts"])
        assert sum(runs) == mask.size
        flat = mask.ravel(order="F")
        values = np.repeat(np.arange(len(runs)) % 2 == 1, runs)
        assert np.array_equal(values, flat)


def test_real_and_edge_objects(real_project):
    cases = [([[square(20, 25, 20), square(24, 29, 12)], [square(27, 32, 6)]], 48, 64),
             ([[square(-5, -5, 100), square(10, 10, 5)]], 48, 64),  # covers the whole image
             ([[square(100, 100, 5), square(101, 101, 1)]], 48, 64),  # outside it
             ([[square(0, 0, 10), square(0, 0, 10)]], 10, 10)]  # the hole is the whole part
    for image in real_project.images:
        shapes = image_shapes(image.objects)
        cases += [(shapes.polygons[i], image.height, image.width) for i in range(shapes.n) if i % 9 == 0]
    for polygons, height, width in cases:
        assert _rle_with_holes(polygons, height, width) == _by_pixels(polygons, height, width)


coordinate = st.floats(-5, 45).map(lambda v: round(v, 1))
ring = st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=8)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(ring, min_size=1, max_size=3), min_size=1, max_size=3), st.integers(1, 40), st.integers(1, 40))
def test_generated_polygons(polygons, height, width):
    polygons = [[np.array(r) for r in rings] for rings in polygons]
    assert _rle_with_holes(polygons, height, width) == _by_pixels(polygons, height, width)


@pytest.mark.parametrize("height, width", [(0, 10), (0, 0)])
def test_an_image_without_pixels(height, width):
    assert _rle_with_holes([[np.array(square(1, 1, 4)), np.array(square(2, 2, 1))]], height, width)["counts"] == "0"
