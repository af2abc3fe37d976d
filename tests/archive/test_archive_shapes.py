"""The array paths of the writers give what the per-object definitions give.

``shapes.image_shapes`` against ``geometry.clean_polygons``/``to_shapely``; the batched Feret
diameters against ``metrics.feret_diameters`` (the calipers); ``shapes.py_round`` against
Python's ``round``; on the real nuclei and on generated polygons with the awkward cases
(repeated and closing points, collinear rings, bow-ties, overlapping parts, pixel outlines
whose diameters tie)."""
import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from archive_helpers import square
from server.archive.geometry import clean_polygons, to_shapely
from server.archive.feret import feret_diameters, feret_of_hulls
from server.archive.metrics import geometry_metrics, metrics_table
from server.archive.shapes import image_shapes, py_round
from server.domain import SegObject

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _assert_same_as_definitions(objects):
    shapes = image_shapes(objects)
    assert shapes.n == len(objects)
    for i, obj in enumerate(objects):
        want = clean_polygons(obj.polygons)
        got = [[r.tolist() for r in rings] for rings in shapes.polygons[i]]
        assert got == [[[list(p) for p in r] for r in rings] for rings in want], obj.id
        geom = to_shapely(obj.polygons)
        assert shapes.has_area[i] == (not geom.is_empty and geom.area > 0), obj.id
        if shapes.has_area[i]:
            assert shapely.equals_exact(shapes.geoms[i], geom, tolerance=0), obj.id
            assert shapes.area[i] == geom.area
            assert tuple(shapes.bounds[i]) == geom.bounds
        assert shapes.holes[i] == any(len(p) > 1 for p in want)
        if want:
            xs = [x for p in want for x, _ in p[0]]
            ys = [y for p in want for _, y in p[0]]
            assert tuple(shapes.ring_bounds[i]) == (min(xs), min(ys), max(xs), max(ys))
        if shapes.simple[i]:
            assert len(want) == 1 and len(want[0]) == 1


AWKWARD = [
    SegObject(1, "c", [[square(2, 2, 10)]]),
    SegObject(2, "c", [[square(20, 2, 16), square(24, 6, 6)]]),
    SegObject(3, "c", [[square(2, 20, 5)], [square(10, 20, 5)]]),
    SegObject(4, "c", [[[(1.0, 1.0), (2.0, 2.0)]]]),  # two points
    SegObject(5, "c", [[[(0, 0), (1, 1), (2, 2)]]]),  # collinear
    SegObject(6, "c", [[[(30, 30), (40, 40), (30, 40), (40, 30)]]]),  # bow-tie: repaired
    SegObject(7, "c", [[[(1, 1), (5, 1), (5, 1), (5, 5), (1, 5), (1, 1), (1, 1)]]]),  # repeats
    SegObject(8, "c", [[square(0, 0, 20)], [square(10, 10, 20)]]),  # overlapping parts
    SegObject(9, "c", [[square(30, 2, 8), [(1, 1), (2, 2), (1, 1), (2, 2)]]]),  # degenerate hole
    SegObject(10, "c", [[[(0, 0), (4, 0), (0, 0), (4, 0), (0, 0)]]]),  # two points back and forth
    SegObject(11, "c", [[]]),  # a polygon without rings
    SegObject(12, "c", []),  # no polygons
    SegObject(13, "c", [[square(0, 0, 10), square(20, 20, 2)]]),  # hole outside: repaired
    SegObject(14, "c", [[[(0, 0), (10, 0), (10, 10), (0, 10)]], [[(1, 1), (2, 1), (1, 1)]]]),  # degenerate 2nd part
]


def test_awkward_objects_match_the_definitions():
    _assert_same_as_definitions(AWKWARD)
    _assert_same_as_definitions([])


def test_real_objects_match_the_definitions(real_project):
    for image in real_project.images:
        _assert_same_as_definitions(image.objects)


coordinate = st.integers(-40, 40).map(lambda v: v / 4)  # a coarse grid: repeats and ties happen
rings = st.lists(st.tuples(coordinate, coordinate), min_size=0, max_size=9)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.lists(rings, min_size=1, max_size=3), min_size=0, max_size=2), min_size=1, max_size=6))
def test_generated_objects_match_the_definitions(objects):
    _assert_same_as_definitions([SegObject(k, "c", polygons) for k, polygons in enumerate(objects)])


def _hulls(objects):
    shapes = image_shapes(objects)
    hulls = shapely.convex_hull(shapes.geoms[shapes.has_area])
    return hulls[shapely.get_type_id(hulls) == shapely.GeometryType.POLYGON]


def _calipers(hulls):
    return np.array([feret_diameters(np.asarray(h.exterior.coords)[:-1]) for h in hulls]).reshape(-1, 3)


def test_batched_feret_is_the_calipers_on_real_outlines(real_project):
    """Pixel outlines tie for the longest diameter all the time; the batch must pick the pair
    the calipers pick, or feret_orthogonal differs."""
    hulls = np.concatenate([_hulls(im.objects) for im in real_project.images])
    got, want = feret_of_hulls(hulls), _calipers(hulls)
    assert len(hulls) == 1122
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert (got[:, 2] == want[:, 2]).mean() > 0.99  # the same pair, so bit for bit


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(coordinate, coordinate), min_size=3, max_size=30), min_size=1, max_size=8))
def test_batched_feret_is_the_calipers_on_generated_hulls(point_sets):
    hulls = np.array([shapely.MultiPoint(p).convex_hull for p in point_sets], dtype=object)
    hulls = hulls[(shapely.get_type_id(hulls) == shapely.GeometryType.POLYGON) & (shapely.area(hulls) > 1e-6)]
    np.testing.assert_allclose(feret_of_hulls(hulls), _calipers(hulls), rtol=1e-12, atol=1e-12)


def test_big_hulls_go_through_the_calipers():
    t = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    ellipse = shapely.Polygon(np.column_stack([50 + 30 * np.cos(t), 40 + 12 * np.sin(t)]))
    got = feret_of_hulls(np.array([ellipse, shapely.box(0, 0, 4, 3)]))
    np.testing.assert_allclose(got[0], _calipers([ellipse])[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], [5, 3, 2 * 4 * 3 / 5], rtol=1e-12)  # across the other diagonal


def test_metrics_table_rows_are_geometry_metrics(real_project):
    image = real_project.images[0]
    shapes = image_shapes(image.objects)
    table = metrics_table(shapes.geoms)
    for row, geom in zip(table, shapes.geoms):
        assert list(geometry_metrics(geom).values()) == row.tolist()
    assert np.isnan(metrics_table(np.array([to_shapely(AWKWARD[3].polygons)], dtype=object))).all()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e7, max_value=1e7), max_size=20),
       st.sampled_from([0, 3, 6]))
def test_py_round_is_pythons_round(values, decimals):
    assert py_round(np.array(values), decimals).tolist() == [round(v, decimals) for v in values]


def test_py_round_on_halfway_values():
    tricky = [0.0005, 0.0015, 2.675, 1.0005, -0.0005, 12.3455, 0.1 + 0.2, 1e-7, 5e-4, 2.5e-3, 1234567.0005]
    for decimals in (3, 6):
        assert py_round(np.array(tricky), decimals).tolist() == [round(v, decimals) for v in tricky]
    assert math.isnan(py_round(np.array([math.nan]), 3)[0])


def _same_shapes(a, b):
    assert a.n == b.n
    def lists(shapes):
        return [[[ring.tolist() for ring in polygon] for polygon in obj] for obj in shapes.polygons]

    assert lists(a) == lists(b)
    assert all(shapely.equals_exact(x, y, tolerance=0) or (x.is_empty and y.is_empty) for x, y in zip(a.geoms, b.geoms))
    for field in ("area", "has_area", "bounds", "ring_bounds", "holes", "simple"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)


def test_shaped_steps_group_images_and_give_what_one_call_per_step_gives(monkeypatch):
    import server.archive.annotation_pass as annotation_pass
    from server.domain import ImageRecord

    monkeypatch.setattr(annotation_pass, "OBJECTS_PER_STEP", 7)
    calls = []
    real = annotation_pass.image_shapes
    monkeypatch.setattr(annotation_pass, "image_shapes", lambda objects: (calls.append(len(objects)), real(objects))[1])
    sizes = [3, 0, 2, 16, 1, 1, 5, 12]  # small images share a group; a big one is cut into steps of 7
    images = [ImageRecord(i, f"im{i}.png", 64, 64, None,
                          [AWKWARD[(i + j) % len(AWKWARD)] for j in range(k)]) for i, k in enumerate(sizes)]
    got = list(annotation_pass.shaped_steps(images, with_metrics=True))
    want = [(i, done, step) for i, image in enumerate(images)
            for done, step in zip(range(0, max(len(image.objects), 1), 7), annotation_pass.object_steps(image))]
    assert [(s.index, s.done, [o.id for o in s.step.objects]) for s in got] == \
        [(i, done, [o.id for o in step.objects]) for i, done, step in want]
    assert sum(calls) == sum(sizes) and max(calls) <= 7 and len(calls) < len(got)  # grouped, never over a step
    for s in got:
        alone = real(s.step.objects)
        _same_shapes(s.shapes, alone)
        np.testing.assert_array_equal(s.table, metrics_table(alone.geoms, alone.area))
