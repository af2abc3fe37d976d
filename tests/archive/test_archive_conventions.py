"""Each format in its consumers' convention, on the real data (issue 19, part 1).

The 1,122 nuclei of shared/data/cells are imported with the hub's importers and exported; then
every object is rasterised the way its format's consumers do and compared with its SOURCE mask
(found through the object's ``source``: the label value, the mask file, the colour patch):
- COCO with pycocotools (``annToMask``);
- YOLO as Ultralytics' ``polygon2mask`` does: coordinates read as float32, times the image
  size, cast to int32, filled with OpenCV's ``fillPoly`` (opencv-python-headless).
Median IoU >= 0.99 for both, and no systematic growth or shrinking: the mean signed area
difference is within 1 %.
"""
from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
from pycocotools.coco import COCO
from scipy import ndimage

from app.models import ExportOptions
from archive_helpers import fill_yolo
from server.archive import write_archive
from server.archive.names import assign_archive_names
from server.imaging import read_image
from server.imports import load_dsb_folders, load_label_images, load_patch_labels
from server.imports.labels import pair_by_stem

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _stardist(cells):
    root = cells / "stardist_dsb2018"
    pairs = [(root / "stardist/data/images/img2d.tif", root / "stardist/data/images/mask2d.tif"),
             (root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif")]
    labels = {k + 1: read_image(label) for k, (_, label) in enumerate(pairs)}
    return load_label_images(pairs), lambda image, source: labels[image.id] == source


def _bbbc039(cells):
    pairs = pair_by_stem(cells / "bbbc039_u2os/images", cells / "bbbc039_u2os/masks")
    masks = {k + 1: read_image(mask) for k, (_, mask) in enumerate(pairs)}

    def source_mask(image, source):
        colour, x, y = re.fullmatch(r"#([0-9a-f]{6}) at \((\d+), (\d+)\)", source).groups()
        rgb = masks[image.id][..., :3]
        same = np.all(rgb == [int(colour[i:i + 2], 16) for i in (0, 2, 4)], axis=2)
        patches, _ = ndimage.label(same)  # 4-connected, as the import
        return patches == patches[int(y), int(x)]

    return load_patch_labels(pairs), source_mask


def _dsb(cells):
    root = cells / "bbbc038_dsb2018/stage1_train"
    plan = load_dsb_folders(root)
    folders = {im.id: root / im.file_name[:-4] / "masks" for im in plan.images}
    return plan, lambda image, source: read_image(folders[image.id] / source) > 0


SETS = {"stardist": _stardist, "bbbc039": _bbbc039, "dsb2018": _dsb}


@pytest.fixture(scope="module", params=list(SETS))
def exported(request, cells_dir, tmp_path_factory):
    plan, source_mask = SETS[request.param](cells_dir)
    project = plan.to_project(1)
    dest = tmp_path_factory.mktemp(request.param) / "export.zip"
    write_archive(project, project.images, ExportOptions(annotation_formats=["coco", "yolo"]), dest,
                  lambda *_: None)
    return request.param, project, source_mask, zipfile.ZipFile(dest)


def _compare(pairs) -> tuple[float, float, int]:
    ious, signed = [], []
    for got, want in pairs:
        ious.append(np.count_nonzero(got & want) / np.count_nonzero(got | want))
        signed.append((np.count_nonzero(got) - np.count_nonzero(want)) / np.count_nonzero(want))
    return float(np.median(ious)), float(np.mean(signed)), len(ious)


def test_coco_fills_back_to_the_source_masks_with_pycocotools(exported):
    name, project, source_mask, zf = exported
    coco = COCO()
    coco.dataset = json.loads(zf.read("annotations/coco/annotations.json"))
    coco.createIndex()
    images = {im.id: im for im in project.images}
    pairs = [(coco.annToMask(ann).astype(bool), source_mask(images[ann["image_id"]], ann["source"]))
             for ann in coco.dataset["annotations"]]
    median_iou, mean_signed, n = _compare(pairs)
    assert n == sum(len(im.objects) for im in project.images)
    assert median_iou >= 0.99, (name, median_iou)
    assert abs(mean_signed) <= 0.01, (name, mean_signed)


def test_yolo_fills_back_to_the_source_masks_with_opencv_fillpoly(exported):
    name, project, source_mask, zf = exported
    pairs = []
    names = assign_archive_names(project.images)
    for image in project.images:
        lines = zf.read(f"yolo/labels/{names[image.id].stem}.txt").decode().splitlines()
        assert len(lines) == len(image.objects), image.file_name
        for line, obj in zip(lines, image.objects):  # one line per object, in order
            pairs.append((fill_yolo(line, image.width, image.height), source_mask(image, obj.source)))
    median_iou, mean_signed, n = _compare(pairs)
    assert n == sum(len(im.objects) for im in project.images)
    assert median_iou >= 0.99, (name, median_iou)
    assert abs(mean_signed) <= 0.01, (name, mean_signed)  # no one-pixel growth to the right and bottom
