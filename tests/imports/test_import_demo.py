"""The synthetic demo project: deterministic, exact polygons, and the promised edge cases."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Polygon, box

from server.demo import generate_demo


@pytest.fixture(scope="module")
def demo():
    return generate_demo()


def _shapes(image):
    return [Polygon(o.polygons[0][0], o.polygons[0][1:]) for o in image.objects]


def test_project_metadata(demo):
    p = demo.project
    assert p.name == "Demo: synthetic nuclei"
    assert p.synthetic is True
    assert "synthetic" in p.description.lower()
    assert p.categories == ["nucleus"]
    assert p.pixel_size_um == pytest.approx(0.65)
    assert len(p.images) == 12
    assert sorted(demo.image_bytes) == [im.id for im in p.images]


def test_same_seed_same_bytes_and_polygons(demo):
    again = generate_demo(n_images=3)
    for im, im2 in zip(demo.project.images[:3], again.project.images):
        assert demo.image_bytes[im.id] == again.image_bytes[im2.id]
        assert [o.polygons for o in im.objects] == [o.polygons for o in im2.objects]


def test_other_seed_differs(demo):
    other = generate_demo(seed=7, n_images=1)
    assert other.image_bytes[1] != demo.image_bytes[1]


def test_counts_and_ids(demo):
    for im in demo.project.images:
        assert (im.width, im.height) == (512, 512)
        assert 20 <= len(im.objects) <= 60
        assert [o.id for o in im.objects] == list(range(1, len(im.objects) + 1))
        assert all(o.category == "nucleus" for o in im.objects)


def test_polygons_valid_inside_frame_and_disjoint(demo):
    frame = box(0, 0, 512, 512)
    for im in demo.project.images:
        shapes = _shapes(im)
        for o, s in zip(im.objects, shapes):
            assert len(o.polygons) == 1
            assert all(len(ring) >= 3 and ring[0] != ring[-1] for ring in o.polygons[0])
            assert s.is_valid, (im.id, o.id)
            assert frame.buffer(1e-9).contains(s)
        for i in range(len(shapes)):
            for j in range(i + 1, len(shapes)):
                assert shapes[i].intersection(shapes[j]).area < 1e-9


def test_holes_touching_pairs_and_border_cuts_present(demo):
    holes = touching = border = 0
    for im in demo.project.images:
        shapes = _shapes(im)
        holes += sum(len(s.interiors) for s in shapes)
        for i in range(len(shapes)):
            for j in range(i + 1, len(shapes)):
                if shapes[i].intersection(shapes[j]).length > 1.0:  # a shared edge, not a point
                    touching += 1
        border += sum(1 for s in shapes if min(s.bounds[:2]) <= 0 or max(s.bounds[2:]) >= 512)
    assert holes >= 12 and touching >= 12 and border >= 1


def test_png_is_16bit_grey_and_matches_polygons(demo):
    from skimage.draw import polygon as draw_polygon

    im = demo.project.images[0]
    pixels = np.asarray(Image.open(io.BytesIO(demo.image_bytes[im.id])))
    assert pixels.shape == (512, 512) and pixels.dtype == np.uint16
    assert pixels.max() <= 4095
    inside = np.zeros(pixels.shape, bool)
    for s in _shapes(im):
        ext = np.asarray(s.exterior.coords)
        rr, cc = draw_polygon(ext[:, 1] - 0.5, ext[:, 0] - 0.5, pixels.shape)
        inside[rr, cc] = True
    # Nuclei are far brighter than the background, so the picture really shows the polygons.
    assert np.median(pixels[inside]) > 3 * np.median(pixels[~inside])


def test_ring_nucleus_is_dark_in_its_hole(demo):
    for im in demo.project.images:
        pixels = np.asarray(Image.open(io.BytesIO(demo.image_bytes[im.id]))).astype(float)
        for s in _shapes(im):
            for hole in s.interiors:
                hp = Polygon(hole)
                if hp.area < 30:
                    continue
                c = hp.representative_point()
                ring_pt = s.representative_point()
                assert pixels[int(c.y), int(c.x)] < pixels[int(ring_pt.y), int(ring_pt.x)]
                return
    pytest.fail("no ring nucleus with a hole of at least 30 px^2")


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate_demo(n_images=0)
    with pytest.raises(ValueError):
        generate_demo(size=10)
