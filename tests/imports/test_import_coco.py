"""COCO import: polygons, RLE (compressed and not), repairs, and the round trip through the
COCO writer of server/archive/coco.py."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from shapely.geometry import Polygon

from server.archive.coco import coco_dict
from server.demo import generate_demo
from server.imports import (ImportValidationError, load_coco, load_label_images, load_patch_labels,
                            polygons_to_mask)
from server.imports.coco import rle_string_counts
from server.imports.labels import pair_by_stem
from server.imports.masks import mask_iou

from import_helpers import write_png


def _dataset(tmp_path, annotations, images=None, categories=None, info=None):
    if images is None:
        images = [{"id": 1, "file_name": "a.png", "width": 30, "height": 20}]
        write_png(tmp_path / "imgs" / "a.png", np.zeros((20, 30), np.uint8))
    data = {"images": images, "annotations": annotations,
            "categories": categories if categories is not None else [{"id": 1, "name": "cell"}, {"id": 2, "name": "nucleus"}]}
    if info is not None:
        data["info"] = info
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    return path, tmp_path / "imgs"


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def test_polygons_and_rle_with_hole(tmp_path):
    ring = np.zeros((20, 30), bool)
    ring[2:12, 2:12] = True
    ring[5:8, 5:8] = False
    uncompressed_mask = np.zeros((20, 30), bool)
    uncompressed_mask[15:18, 20:29] = True
    flat = uncompressed_mask.flatten(order="F").astype(int)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])))  # run boundaries
    counts = np.diff(np.concatenate([[0], change])).tolist()
    counts = [c for c in counts if c] if flat[0] == 0 else [0] + counts
    anns = [
        {"id": 10, "image_id": 1, "category_id": 2, "segmentation": [[20, 2, 28, 2, 28, 10, 20, 10]]},
        {"id": 11, "image_id": 1, "category_id": 1, "segmentation": _rle(ring), "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1,
         "segmentation": {"size": [20, 30], "counts": counts}},
        # two overlapping parts: united, as pycocotools' merge does
        {"id": 13, "image_id": 1, "category_id": 2, "segmentation": [[0, 14, 6, 14, 6, 19, 0, 19],
                                                                     [4, 14, 10, 14, 10, 19, 4, 19]]},
    ]
    plan = load_coco(*_dataset(tmp_path, anns, info={"description": "My set"}))
    assert plan.name == "My set" and plan.categories == ["cell", "nucleus"] and plan.source_format == "coco"
    (image,) = plan.images
    objs = {o.id: o for o in image.objects}
    assert objs[10].polygons == [[[(20.0, 2.0), (28.0, 2.0), (28.0, 10.0), (20.0, 10.0)]]]
    assert objs[10].category == "nucleus" and objs[11].category == "cell"
    assert len(objs[11].polygons) == 1 and len(objs[11].polygons[0]) == 2  # exterior + hole
    assert mask_iou(polygons_to_mask(objs[11].polygons, 20, 30), ring) == 1.0
    assert mask_iou(polygons_to_mask(objs[12].polygons, 20, 30), uncompressed_mask) == 1.0
    assert len(objs[13].polygons) == 1
    assert Polygon(objs[13].polygons[0][0]).area == pytest.approx(50.0)
    assert plan.warnings == []


def test_self_intersecting_polygon_is_repaired_with_warning(tmp_path):
    bowtie = [[2, 2, 12, 12, 12, 2, 2, 12]]
    plan = load_coco(*_dataset(tmp_path, [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": bowtie}]))
    (obj,) = plan.images[0].objects
    shapes = [Polygon(p[0], p[1:]) for p in obj.polygons]
    assert len(shapes) == 2 and all(s.is_valid for s in shapes)
    assert sum(s.area for s in shapes) == pytest.approx(50.0)
    assert any("annotation 1" in w and "make_valid" in w for w in plan.warnings)


def test_all_coco_problems_reported_together(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "width": 30, "height": 20},
        {"id": 2, "file_name": "wrong_size.png", "width": 30, "height": 20},
        {"id": 3, "file_name": "missing.png", "width": 30, "height": 20},
        {"id": 4, "file_name": "notes.png", "width": 30, "height": 20},
        {"id": 5, "file_name": "../outside.png", "width": 30, "height": 20},
    ]
    write_png(tmp_path / "imgs" / "a.png", np.zeros((20, 30), np.uint8))
    write_png(tmp_path / "imgs" / "wrong_size.png", np.zeros((21, 30), np.uint8))
    (tmp_path / "imgs" / "notes.png").write_text("hello")
    write_png(tmp_path / "outside.png", np.zeros((20, 30), np.uint8))
    empty = np.zeros((20, 30), bool)
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5]]},
        {"id": 2, "image_id": 1, "category_id": 99, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 3, "image_id": 77, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 4, "image_id": 1, "category_id": 1, "segmentation": _rle(empty)},
        {"id": 5, "image_id": 1, "category_id": 1, "segmentation": {"size": [10, 10], "counts": "0"}},
        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": {"size": [20, 30], "counts": "\x7f\x7f"}},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5]]},
        {"id": 7, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]},
        {"id": 8, "image_id": 1, "category_id": 1},
        {"id": 9, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 2, 2, 3, 3]]},
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": {"size": [20, 30], "counts": [5, 5]}},
    ]
    path, folder = _dataset(tmp_path, anns, images=images)
    with pytest.raises(ImportValidationError) as err:
        load_coco(path, folder)
    text = "\n".join(err.value.problems)
    expected = [
        "wrong_size.png is 30x21",  # image size disagrees with the annotation file
        "missing image file", "missing.png",
        "not an image file", "notes.png",
        "points outside the images folder",
        "annotation 1: polygon 0 has fewer than 3 points",
        "annotation 2: unknown category id 99",
        "annotation 3: unknown image id 77",
        "annotation 4: empty mask",
        "annotation 5: RLE size 10x10 (WxH) disagrees with the image's 30x20",
        "annotation 6: RLE cannot be decoded",
        "annotation 7: polygon 0 has an odd number of coordinates",
        "annotation 7: id appears twice",
        "annotation 8: no segmentation",
        "annotation 9: segmentation has no area",
        "annotation 10: RLE cannot be decoded",
    ]
    for fragment in expected:
        assert fragment in text, fragment
    assert len(err.value.problems) == 15
    assert str(err.value).startswith("import rejected, 15 problem(s):")


def test_bad_json_and_size_limit(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ImportValidationError, match="not a JSON file"):
        load_coco(tmp_path / "bad.json", tmp_path / "imgs")
    with pytest.raises(ImportValidationError, match="missing COCO JSON file"):
        load_coco(tmp_path / "none.json", tmp_path / "imgs")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ImportValidationError, match="top level is not a JSON object"):
        load_coco(tmp_path / "list.json", tmp_path / "imgs")
    (tmp_path / "partial.json").write_text('{"images": []}')
    with pytest.raises(ImportValidationError) as err:
        load_coco(tmp_path / "partial.json", tmp_path / "imgs")
    assert len(err.value.problems) == 2  # annotations and categories missing
    path, folder = _dataset(tmp_path, [])
    with pytest.raises(ImportValidationError, match="too large"):
        load_coco(path, folder, max_file_bytes=50)


def test_rle_string_counts_matches_pycocotools():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = rng.integers(1, 30, 2)
        mask = rng.random((h, w)) < rng.random()
        counts = rle_string_counts(_rle(mask)["counts"])
        assert sum(counts) == h * w
        runs = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
        assert np.array_equal(runs.reshape(w, h).T, mask)
    with pytest.raises(ValueError):
        rle_string_counts("Q")  # chunk 33 has the "more follows" bit and nothing follows
    with pytest.raises(ValueError):
        rle_string_counts(" ")


# ---- round trip: ImportPlan -> COCO (server/archive/coco.py) -> load_coco ------------------

def _write_coco(tmp_path, project, image_sources):
    data = coco_dict(project, project.images)
    folder = tmp_path / "images"
    folder.mkdir()
    for entry in data["images"]:
        source = image_sources[entry["id"]]
        if isinstance(source, bytes):
            (folder / entry["file_name"]).write_bytes(source)
        else:
            shutil.copyfile(source, folder / entry["file_name"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, folder


def _assert_same_objects(before_images, after_images):
    assert len(before_images) == len(after_images)
    worst = 1.0
    for before, after in zip(before_images, after_images):
        assert (before.width, before.height) == (after.width, after.height)
        assert len(before.objects) == len(after.objects)
        for a, b in zip(before.objects, after.objects):
            assert a.category == b.category
            iou = mask_iou(polygons_to_mask(a.polygons, before.height, before.width),
                           polygons_to_mask(b.polygons, after.height, after.width))
            worst = min(worst, iou)
            assert iou >= 0.99, (before.file_name, a.id, iou)
    return worst


def test_round_trip_of_imported_real_data(tmp_path, cells_dir):
    pairs = [p for p in pair_by_stem(cells_dir / "bbbc039_u2os/images", cells_dir / "bbbc039_u2os/masks")
             if "H06_s6" in p[0].name or "F13_s7" in p[0].name]  # tiny objects and the empty image
    root = cells_dir / "stardist_dsb2018"
    plans = [load_patch_labels(pairs),
             load_label_images([(root / "stardist/data/images/img2d.tif", root / "stardist/data/images/mask2d.tif"),
                                (root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif")])]
    for k, plan in enumerate(plans):
        sub = tmp_path / str(k)
        sub.mkdir()
        path, folder = _write_coco(sub, plan.to_project(), {im.id: im.path for im in plan.images})
        back = load_coco(path, folder)
        assert back.object_count == plan.object_count
        _assert_same_objects(plan.images, back.images)


def test_round_trip_keeps_holes_of_the_demo(tmp_path):
    demo = generate_demo(n_images=2)
    path, folder = _write_coco(tmp_path, demo.project, demo.image_bytes)
    back = load_coco(path, folder)
    assert sum(len(p) > 1 for im in back.images for o in im.objects for p in o.polygons) == \
        sum(len(p) > 1 for im in demo.project.images for o in im.objects for p in o.polygons) > 0
    _assert_same_objects(demo.project.images, back.images)
