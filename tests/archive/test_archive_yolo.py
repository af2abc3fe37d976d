import numpy as np
import pytest
import yaml
from shapely.geometry import Polygon
from skimage.draw import polygon as draw_polygon

from archive_helpers import iou, rasterise, square
from server.archive.coco import category_ids
from server.archive.geometry import bridged_ring, to_shapely
from server.archive.yolo import classes_txt, data_yaml, label_text, yolo_line
from server.domain import ImageRecord, SegObject

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def read_labels(text: str, num_classes: int) -> list[tuple[int, np.ndarray]]:
    """Parse a label file with Ultralytics' rules (verify_image_label) and assert them."""
    rows = [x.split() for x in text.strip().splitlines() if len(x)]
    out = []
    for row in rows:
        assert len(row) > 6 and (len(row) - 1) % 2 == 0, "segment lines: class + >= 3 points"
        cls = float(row[0])
        assert cls == int(cls) and 0 <= cls < num_classes
        xy = np.array(row[1:], dtype=np.float32).reshape(-1, 2)
        assert xy.min() >= 0 and xy.max() <= 1
        out.append((int(cls), xy))
    keys = [tuple(r) for r in rows]
    assert len(set(keys)) == len(keys), "Ultralytics drops duplicate rows"
    return out


def fill(xy_px: np.ndarray, height: int, width: int, rule: str) -> np.ndarray:
    """Fill one ring: 'coco' = pycocotools' polygon fill, 'evenodd' = skimage point-in-polygon
    at pixel centres."""
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


def test_bridged_ring_keeps_holes_and_parts():
    geom = to_shapely([[square(20, 25, 20), square(24, 29, 12)], [square(27, 32, 6)], [[(0, 0), (5, 0), (0, 5)]]])
    ring = bridged_ring(geom)
    # Bridges are walked both ways, so the shoelace area is the area with holes subtracted.
    assert abs(Polygon(ring).area) == pytest.approx(400 - 144 + 36 + 12.5)
    source = [[square(20, 25, 20), square(24, 29, 12)], [square(27, 32, 6)], [[(0, 0), (5, 0), (0, 5)]]]
    for rule in ("coco", "evenodd"):
        assert iou(fill(ring, 64, 64, rule), fill_source(source, 64, 64, rule)) >= 0.99


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
        exact = [np.array(line.split()[1:], dtype=np.float64).reshape(-1, 2) for line in text.splitlines()]
        for (cls, _), xy, obj in zip(lines, exact, kept):
            assert cls == classes[obj.category]
            px = xy * (image.width, image.height)
            for rule in ("coco", "evenodd"):
                want = fill_source(obj.polygons, image.height, image.width, rule)
                assert iou(fill(px, image.height, image.width, rule), want) >= 0.99, (obj.id, rule)
        assert [w for w in warnings if "object 8" not in w] == []


def test_border_objects_are_clipped_into_0_1(synthetic_project):
    image = synthetic_project.images[0]
    obj = next(o for o in image.objects if o.id == 6)  # 55..75 x 40..60 on a 64 x 48 image
    line, warning = yolo_line(obj, image, 0)
    xy = np.array(line.split()[1:], dtype=float).reshape(-1, 2)
    assert warning is None
    assert xy.max() == 1.0
    assert xy[:, 0].min() == pytest.approx(55 / 64) and xy[:, 1].min() == pytest.approx(40 / 48, abs=1e-6)
    assert Polygon(xy * (64, 48)).area == pytest.approx(9 * 8, abs=1e-3)


def test_degenerate_and_outside_objects_are_skipped_with_a_warning():
    image = ImageRecord(1, "a.png", 10, 10)
    line, warning = yolo_line(SegObject(4, "c", [[[(1, 1), (2, 2), (3, 3)]]]), image, 0)
    assert line is None and "object 4" in warning
    line, warning = yolo_line(SegObject(5, "c", [[square(20, 20, 3)]]), image, 0)
    assert line is None and "outside the image" in warning


def test_empty_image_gives_an_empty_label_file():
    assert label_text(ImageRecord(1, "a.png", 10, 10), {"c": 0}, []) == ""


def test_data_yaml_and_classes_txt():
    doc = yaml.safe_load(data_yaml(["cell", "nucleus"], "../../images"))
    assert doc == {"train": "../../images", "val": "../../images", "nc": 2, "names": {0: "cell", 1: "nucleus"}}
    assert classes_txt(["cell", "nucleus"]).splitlines() == ["cell", "nucleus"]


def test_real_data_labels_fill_back_to_the_source(real_project):
    classes = {"nucleus": 0}
    total = 0
    worst = 1.0
    for image in real_project.images:
        warnings = []
        lines = read_labels(label_text(image, classes, warnings), 1)
        assert warnings == []
        assert len(lines) == len(image.objects)
        total += len(lines)
        for (_, xy), obj in zip(lines, image.objects):
            px = xy.astype(np.float64) * (image.width, image.height)
            x0, y0 = np.floor(px.min(axis=0)).astype(int) - 1
            w, h = np.ceil(px.max(axis=0)).astype(int) + 2 - (x0, y0)
            got = rasterise([[(px - (x0, y0)).tolist()]], h, w)
            want = rasterise(obj.polygons, h, w, (x0, y0))
            worst = min(worst, iou(got, want))
    assert total == 1122
    assert worst >= 0.99


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
