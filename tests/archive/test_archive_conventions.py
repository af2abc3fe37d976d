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

import contextlib
import io
import json
import zipfile

import numpy as np
import pytest
from pycocotools.coco import COCO

from app.models import ExportOptions
from archive_helpers import REAL_SETS, fill_yolo
from server.archive import write_archive
from server.archive.names import assign_archive_names

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module", params=list(REAL_SETS))
def exported(request, cells_dir, tmp_path_factory):
    plan, source_mask = REAL_SETS[request.param](cells_dir)
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


def test_cocoeval_needs_the_max_dets_the_readme_gives(exported):
    # An archive evaluated against itself is perfect only once maxDets covers the densest image,
    # and AP@[.5:.95] read from the precision array as the README says.
    from pycocotools.cocoeval import COCOeval

    name, project, _, zf = exported
    data = json.loads(zf.read("annotations/coco/annotations.json"))
    readme = zf.read("README.md").decode()
    most = max(len(im.objects) for im in project.images)
    dets = max(100, most)
    assert f"E.params.maxDets = [1, 10, {dets}]" in readme and f"to {most} objects" in readme
    assert "p = E.eval['precision'][:, :, :, 0, -1]; p[p > -1].mean()" in readme
    truth = COCO()
    truth.dataset = data
    truth.createIndex()
    results = truth.loadRes([{**a, "score": 1.0} for a in data["annotations"]])
    found = {}
    for max_dets in ([1, 10, 100], [1, 10, dets]):
        evaluation = COCOeval(truth, results, "segm")
        evaluation.params.maxDets = max_dets
        with contextlib.redirect_stdout(io.StringIO()):
            evaluation.evaluate()
            evaluation.accumulate()
        p = evaluation.eval["precision"][:, :, :, 0, -1]
        found[max_dets[-1]] = float(p[p > -1].mean())
    assert found[dets] == pytest.approx(1.0)
    if most > 100:
        assert found[100] < 0.95  # the default leaves the objects past the 100th of the densest image out
