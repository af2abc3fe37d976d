import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from shapely.geometry import Polygon

from archive_helpers import iou, rasterise_crop
from server.archive.coco import coco_dict, iter_coco_json
from server.archive.geometry import to_shapely

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _load(tmp_path, data):
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(data))
    return COCO(str(path))


def _check_masks(coco, images_by_id):
    """Worst IoU of annToMask against the source polygons rasterised with pycocotools."""
    objects = {(im.id, o.id): (im, o) for im in images_by_id.values() for o in im.objects}
    worst = 1.0
    for ann in coco.loadAnns(coco.getAnnIds()):
        image, obj = objects[(ann["image_id"], ann["object_id"])]
        got = coco.annToMask(ann).astype(bool)
        want, (x0, y0) = rasterise_crop(obj.polygons)  # a crop 1 px beyond the object's bounds
        rows, cols = np.ogrid[y0:y0 + want.shape[0], x0:x0 + want.shape[1]]
        want &= (rows >= 0) & (rows < image.height) & (cols >= 0) & (cols < image.width)  # as COCO clips
        # Compare in that crop (padding keeps it inside the array for objects crossing the image
        # border); nothing of the mask may lie outside it.
        pad = max(want.shape) + 2
        window = np.pad(got, pad)[y0 + pad:y0 + pad + want.shape[0], x0 + pad:x0 + pad + want.shape[1]]
        assert np.count_nonzero(window) == np.count_nonzero(got)
        worst = min(worst, iou(window, want))
    return worst


def test_synthetic_project_loads_with_pycocotools_and_masks_match(tmp_path, synthetic_project):
    warnings = []
    data = coco_dict(synthetic_project, synthetic_project.images, warnings=warnings)
    coco = _load(tmp_path, data)
    # 7 + 3 + 2 objects with area; object 8 (two points) is skipped on image 10 only.
    assert len(coco.getAnnIds()) == 12
    assert warnings == ["COCO: image 'cells.png' object 8 skipped: no area"]
    assert _check_masks(coco, {im.id: im for im in synthetic_project.images}) >= 0.99
    assert sorted(a["id"] for a in data["annotations"]) == list(range(1, 13))


def test_images_use_unique_archive_names_and_keep_empty_images(synthetic_project):
    data = coco_dict(synthetic_project, synthetic_project.images)
    assert [(i["id"], i["file_name"]) for i in data["images"]] == [
        (10, "cells.png"), (11, "deep.tif"), (12, "cells_2.png"), (13, "empty.png")]
    assert all(i["width"] == 64 and i["height"] == 48 for i in data["images"])
    assert not [a for a in data["annotations"] if a["image_id"] == 13]
    assert data["categories"] == [{"id": 1, "name": "cell", "supercategory": "object"},
                                  {"id": 2, "name": "nucleus", "supercategory": "object"}]


def test_hole_objects_are_rle_with_iscrowd_0_and_area_without_holes(synthetic_project):
    data = coco_dict(synthetic_project, synthetic_project.images[:1])
    by_obj = {a["object_id"]: a for a in data["annotations"]}
    ring = by_obj[2]
    assert isinstance(ring["segmentation"], dict)
    assert ring["segmentation"]["size"] == [48, 64] and isinstance(ring["segmentation"]["counts"], str)
    assert ring["iscrowd"] == 0
    assert ring["area"] == 16 * 16 - 6 * 6
    assert ring["bbox"] == [20, 2, 16, 16]
    assert by_obj[5]["area"] == 20 * 20 - 12 * 12 + 6 * 6  # island inside the hole counts
    assert all(a["iscrowd"] == 0 for a in data["annotations"])


def test_multi_part_objects_are_one_annotation_with_one_polygon_per_part(synthetic_project):
    data = coco_dict(synthetic_project, synthetic_project.images[:1])
    two = next(a for a in data["annotations"] if a["object_id"] == 3)
    assert two["segmentation"] == [[2, 20, 7, 20, 7, 25, 2, 25], [10, 20, 15, 20, 15, 25, 10, 25]]
    assert two["area"] == 50
    assert two["bbox"] == [2, 20, 13, 5]
    assert two["category_id"] == 2


def test_streamed_text_is_the_same_document(synthetic_project):
    chunks = list(iter_coco_json(synthetic_project, synthetic_project.images))
    assert len(chunks) > len(synthetic_project.images)  # one image's annotations per chunk, not one blob
    streamed = json.loads("".join(chunks))
    whole = coco_dict(synthetic_project, synthetic_project.images)
    for doc in (streamed, whole):
        doc["info"].pop("date_created")
    assert streamed == whole


def test_unknown_category_gets_an_id_instead_of_being_dropped(synthetic_project):
    image = synthetic_project.images[1]
    image.objects[0].category = "debris"
    data = coco_dict(synthetic_project, [image])
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert names[3] == "debris"
    assert data["annotations"][0]["category_id"] == 3


def test_progress_callback_can_cancel(synthetic_project):
    class Stop(Exception):
        pass

    def on_image(index, image, done, total):
        if index == 1:
            raise Stop

    with pytest.raises(Stop):
        "".join(iter_coco_json(synthetic_project, synthetic_project.images, on_image=on_image))


def test_real_data_every_annotation_matches_its_source_polygons(tmp_path, real_project):
    data = coco_dict(real_project, real_project.images)
    coco = _load(tmp_path, data)
    assert len(coco.getAnnIds()) == 1122
    assert len(coco.getImgIds()) == 17
    # Both StarDist images are called img2d.tif in the project.
    assert sorted(i["file_name"] for i in data["images"] if i["file_name"].startswith("img2d")) == [
        "img2d.tif", "img2d_2.tif"]
    rle = [a for a in data["annotations"] if isinstance(a["segmentation"], dict)]
    assert rle, "the real data has objects with holes"
    assert _check_masks(coco, {im.id: im for im in real_project.images}) >= 0.99
    for ann in data["annotations"][:200]:
        image = next(im for im in real_project.images if im.id == ann["image_id"])
        obj = next(o for o in image.objects if o.id == ann["object_id"])
        assert np.isclose(ann["area"], to_shapely(obj.polygons).area, atol=1e-3)
        assert ann["area"] <= sum(Polygon(p[0]).area for p in obj.polygons) + 1e-6


def test_real_dsb_masks_come_back_from_the_coco_file(tmp_path, real_project, cells_dir):
    """End to end against the original annotation files: each DSB object is one mask PNG
    (object k = k-th mask file in name order), and annToMask must give that mask back."""
    from PIL import Image

    dsb = [im for im in real_project.images if "bbbc038" in im.path]
    assert len(dsb) == 9
    coco = _load(tmp_path, coco_dict(real_project, dsb))
    by_key = {(a["image_id"], a["object_id"]): a for a in coco.dataset["annotations"]}
    worst, checked = 1.0, 0
    for image in dsb:
        masks = sorted((cells_dir / "bbbc038_dsb2018" / "stage1_train" / image.file_name[:-4] / "masks").glob("*.png"))
        for k, path in enumerate(masks, start=1):
            original = np.asarray(Image.open(path)) > 0
            worst = min(worst, iou(coco.annToMask(by_key[(image.id, k)]).astype(bool), original))
            checked += 1
    assert checked == 356
    assert worst >= 0.99


def test_cocoeval_scores_the_ground_truth_against_itself_as_perfect(tmp_path, synthetic_project, capsys):
    """The file works as COCOeval ground truth; every object, the RLE ones included, counts as an
    ordinary instance (a crowd region would be ignored: gtIgnore = 1)."""
    from pycocotools.cocoeval import COCOeval

    gt = _load(tmp_path, coco_dict(synthetic_project, synthetic_project.images))
    results = []
    for ann in gt.loadAnns(gt.getAnnIds()):
        rle = gt.annToRLE(ann)
        rle = {"size": rle["size"], "counts": rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes)
               else rle["counts"]}
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                        "segmentation": rle, "score": 1.0})
    evaluation = COCOeval(gt, gt.loadRes(results), iouType="segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)
    everything = evaluation.params.areaRng[0]  # the "all" area range: only crowd makes a gt ignored
    ignored = [g for e in evaluation.evalImgs if e is not None and e["aRng"] == everything for g in e["gtIgnore"]]
    assert ignored and not any(ignored)
