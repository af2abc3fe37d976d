"""YOLO labels: Ultralytics' line rules, and the convention its loader rasterises with (OpenCV
``fillPoly`` on pixel indices), checked with OpenCV itself."""
import numpy as np
import pytest
import yaml
from shapely.geometry import Polygon
from skimage.draw import polygon as draw_polygon

from archive_helpers import fill_yolo, iou, rasterise, read_labels, square
from server.archive.coco import category_ids
from server.archive.geometry import bridge_loops, oriented_loops, to_shapely
from server.archive.yolo import classes_txt, data_yaml, label_text, micro_units, yolo_line
from server.domain import ImageRecord, SegObject

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def fill(xy_px: np.ndarray, height: int, width: int, rule: str) -> np.ndarray:
    """Fill one ring in COCO coordinates: 'coco' = pycocotools' polygon fill, 'evenodd' =
    skimage point-in-polygon at pixel centres."""
    if rule == "coco":
        return rasterise([[np.asarray(xy_px).tolist()]], height, width)
    xy_px = np.asarray(xy_px, dtype=np.float64)
    mask = np.zeros((height, width), dtype=bool)
    rr, cc = draw_polygon(xy_px[:, 1] - 0.5, xy_px[:, 0] - 0.5, (height, width))
    mask[rr, cc] = True
    return mask


def fill_source(polygons, height: int, width: int, rule: str) -> np.ndarray:
    """The source object filled by the same rasteriser: parts minus their holes, united."""
    out = np.zeros((height, width), dtype=bool)
    for rings in polygons:
        part = fill(rings[0], height, width, rule)
        for hole in rings[1:]:
            part &= ~fill(hole, height, width, rule)
        out |= part
    return out


def test_bridged_loops_keep_holes_and_parts():
    source = [[square(20, 25, 20), square(24, 29, 12)], [square(27, 32, 6)], [[(0, 0), (5, 0), (0, 5)]]]
    ring = bridge_loops(oriented_loops(to_shapely(source)))
    # Bridges are walked both ways, so the shoelace area is the area with holes subtracted.
    assert abs(Polygon(ring).area) == pytest.approx(400 - 144 + 36 + 12.5)
    for rule in ("coco", "evenodd"):
        assert iou(fill(ring, 64, 64, rule), fill_source(source, 64, 64, rule)) >= 0.99


def test_pixel_edge_outlines_become_the_pixel_centres_opencv_fills():
    image = ImageRecord(1, "a.png", 64, 48)
    cases = {
        "square of pixels 2..5": SegObject(1, "c", [[square(2, 3, 4)]]),
        "one pixel": SegObject(2, "c", [[square(9, 9, 1)]]),
        "a row of pixels": SegObject(3, "c", [[[(12, 4), (20, 4), (20, 5), (12, 5)]]]),
        "a one-pixel hole": SegObject(4, "c", [[square(30, 10, 5), square(32, 12, 1)]]),
        "an L": SegObject(5, "c", [[[(40, 2), (44, 2), (44, 4), (42, 4), (42, 8), (40, 8)]]]),
        "touching the right and bottom edges": SegObject(6, "c", [[square(58, 42, 6)]]),
    }
    for what, obj in cases.items():
        line, warning = yolo_line(obj, image, 0)
        assert warning is None, what
        assert len(line.split()) >= 7, what  # class + at least 3 points, as Ultralytics needs
        want = rasterise(obj.polygons, 48, 64)
        assert np.array_equal(fill_yolo(line, 64, 48), want), what
    one_pixel = np.array(yolo_line(cases["one pixel"], image, 0)[0].split()[1:], dtype=float).reshape(-1, 2)
    assert np.all(one_pixel == one_pixel[0]) and np.array_equal(np.floor(one_pixel[0] * (64, 48)), (9, 9))


def test_synthetic_labels_follow_ultralytics_rules_and_fill_back(synthetic_project):
    classes = {name: i - 1 for name, i in category_ids(synthetic_project, synthetic_project.images).items()}
    for image in synthetic_project.images:
        warnings = []
        text = label_text(image, classes, warnings)
        lines = read_labels(text, len(classes))
        kept = [o for o in image.objects if o.id != 8]
        assert len(lines) == len(kept)
        assert text == "" or text.endswith("\n")
        assert not any(line.startswith("#") for line in text.splitlines())
        for (cls, _), line, obj in zip(lines, text.splitlines(), kept):
            assert cls == classes[obj.category]
            want = rasterise(obj.polygons, image.height, image.width)
            got = fill_yolo(line, image.width, image.height)
            # Outlines along pixel edges: exact, but for the one-pixel lines of the bridges that
            # join parts and holes. The free triangle (7): also the pixels its outline runs through.
            extra = {3: 3, 4: 2, 5: 3, 7: 16}.get(obj.id, 0)
            assert np.count_nonzero(got & ~want) <= extra, obj.id
            assert np.count_nonzero(want & ~got) == 0, obj.id
        assert [w for w in warnings if "object 8" not in w] == []


def test_border_objects_are_clipped_into_the_image(synthetic_project):
    image = synthetic_project.images[0]
    obj = next(o for o in image.objects if o.id == 6)  # 55..75 x 40..60 on a 64 x 48 image
    line, warning = yolo_line(obj, image, 0)
    assert warning is None
    xy = np.array(line.split()[1:], dtype=float).reshape(-1, 2)
    assert xy.max() <= 1.0
    assert set(np.floor(xy[:, 0] * 64).astype(int)) == {55, 63} and set(np.floor(xy[:, 1] * 48).astype(int)) == {40, 47}
    assert np.count_nonzero(fill_yolo(line, 64, 48)) == 9 * 8


def test_degenerate_and_outside_objects_are_skipped_with_a_warning():
    image = ImageRecord(1, "a.png", 10, 10)
    line, warning = yolo_line(SegObject(4, "c", [[[(1, 1), (2, 2), (3, 3)]]]), image, 0)
    assert line is None and "object 4" in warning and "no area" in warning
    line, warning = yolo_line(SegObject(5, "c", [[square(20, 20, 3)]]), image, 0)
    assert line is None and "outside the image" in warning


def test_empty_image_gives_an_empty_label_file():
    assert label_text(ImageRecord(1, "a.png", 10, 10), {"c": 0}, []) == ""


def test_data_yaml_and_classes_txt():
    text = data_yaml(["cell", "nucleus", "a: b"])
    assert yaml.safe_load(text) == {"path": "", "train": "images", "val": "images", "nc": 3,
                                    "names": {0: "cell", 1: "nucleus", 2: "a: b"}}
    assert text.startswith("# ")  # says why path is empty
    assert classes_txt(["cell", "nucleus"]).splitlines() == ["cell", "nucleus"]


def test_coordinates_multiply_back_to_their_pixel_index_in_float32_and_float64():
    rng = np.random.default_rng(3)
    for size in [1, 2, 3, 7, 10, 256, 320, 347, 360, 696, 1024, 1388, 4095, 9999, 65_535, 99_991]:
        index = np.unique(np.r_[0, size - 1, rng.integers(0, size, 5000)])
        units = micro_units(index, size)
        exact = -(-index * 10**6 // size)
        assert np.all((units - exact >= 0) & (units - exact <= 1))  # the smallest that works
        as32 = (units / 1e6).astype(np.float32) * np.float32(size)
        as64 = units / 1e6 * size
        assert np.array_equal(as32.astype(np.int32), index) and np.array_equal(as64.astype(np.int64), index)
        assert np.array_equal(np.rint(as64), index)  # rounding readers get the same pixel
        assert units.max() < 10**6


def test_coordinates_are_written_as_printf_would_with_six_decimals():
    # The label text is made for all of an image's points at once; it must be what
    # "%.6f" writes for each (normalised, rounded to 6 decimals, clipped into 0..1) value.
    from server.archive.yolo import fixed6_text

    rng = np.random.default_rng(11)
    edges = [0.0, 1.0, 1e-6, 0.5, 0.999999, 0.9999995, 0.0000005, 0.1 + 0.2, 1 / 3, 2 / 3, 0.123456]
    raw = np.concatenate([edges, rng.random(20_000), rng.random(2_000) * 1e-5, 1 - rng.random(2_000) * 1e-5])
    values = np.clip(np.round(raw, 6), 0.0, 1.0)
    assert fixed6_text(values) == "".join("%.6f " % v for v in values.tolist())
    assert fixed6_text(np.array([-0.0])) == "0.000000 "  # never "-0.000000"
    assert fixed6_text(np.array([])) == ""


def test_fixed6_text_refuses_values_it_cannot_write():
    from server.archive.yolo import fixed6_text

    for bad in (np.nan, np.inf, -0.5, 1.5):
        with pytest.raises(ValueError, match="0..1"):
            fixed6_text(np.array([0.5, bad]))
