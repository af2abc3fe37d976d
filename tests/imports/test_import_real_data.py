"""All of shared/data/cells through the loaders: per-image object counts of SOURCES.md, the
edge cases it lists, and per-object fidelity (pycocotools rasterisation vs source mask)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from shapely.geometry import Polygon

from server.imaging import read_image
from server.imports import load_dsb_folders, load_label_images, load_patch_labels, polygons_to_mask
from server.imports.labels import pair_by_stem
from server.imports.masks import mask_iou

DSB_COUNTS = {"00071198": 27, "0bf4b144": 57, "06c77933": 30, "df53d0b6": 80, "9ebcfaf2": 58,
              "c901794d": 14, "0bf33d3d": 29, "13f2bec0": 17, "091944f1": 44}
BBBC039_COUNTS = {"A02_s1": 110, "A12_s7": 69, "H06_s6": 154, "K12_s7": 231, "P23_s7": 12, "F13_s7": 0}


@pytest.fixture(scope="module")
def dsb(cells_dir):
    return load_dsb_folders(cells_dir / "bbbc038_dsb2018" / "stage1_train")


@pytest.fixture(scope="module")
def bbbc039_pairs(cells_dir):
    return pair_by_stem(cells_dir / "bbbc039_u2os" / "images", cells_dir / "bbbc039_u2os" / "masks")


@pytest.fixture(scope="module")
def bbbc039(bbbc039_pairs):
    return load_patch_labels(bbbc039_pairs)


@pytest.fixture(scope="module")
def stardist_pairs(cells_dir):
    root = cells_dir / "stardist_dsb2018"
    return [(root / "stardist/data/images/img2d.tif", root / "stardist/data/images/mask2d.tif"),
            (root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif")]


@pytest.fixture(scope="module")
def stardist(stardist_pairs):
    return load_label_images(stardist_pairs)


def _area(obj) -> float:
    return sum(Polygon(p[0], p[1:]).area for p in obj.polygons)


def _check_fidelity(image, obj, mask, stats):
    back = polygons_to_mask(obj.polygons, image.height, image.width)
    iou = mask_iou(back, mask)
    stats.append(iou)
    assert iou >= 0.99, (image.file_name, obj.id, iou)
    pixels = np.count_nonzero(mask)
    assert abs(_area(obj) - pixels) <= 0.05 * pixels, (image.file_name, obj.id)
    for p in obj.polygons:
        assert Polygon(p[0], p[1:]).is_valid
        assert all(0 <= x <= image.width and 0 <= y <= image.height for ring in p for x, y in ring)


def test_dsb_counts_and_layout(dsb):
    assert dsb.source_format == "dsb2018" and dsb.categories == ["nucleus"]
    counts = {im.file_name[:8]: len(im.objects) for im in dsb.images}
    assert counts == DSB_COUNTS
    assert dsb.object_count == 356
    for im in dsb.images:
        assert Path(im.path).is_file() and Path(im.path).name == im.file_name
        assert [o.id for o in im.objects] == list(range(1, len(im.objects) + 1))
    assert dsb.warnings == []  # DSB masks never overlap


def test_dsb_two_part_object_and_border_cuts(dsb):
    by_name = {im.file_name[:8]: im for im in dsb.images}
    # SOURCES.md: one mask in 00071198 is in separate parts. Pieces are 4-connected (as the
    # contours and COCO's rasterisation see them): 353 px + a diagonal tail of 1 + 2 px.
    multi = [o for o in by_name["00071198"].objects if len(o.polygons) > 1]
    assert [len(o.polygons) for o in multi] == [3]
    assert all(len(o.polygons) == 1 for k, im in by_name.items() if k != "00071198" for o in im.objects)
    im = by_name["06c77933"]
    on_border = [o for o in im.objects if any(x in (0.0, im.width) or y in (0.0, im.height)
                                              for p in o.polygons for x, y in p[0])]
    assert on_border


def test_dsb_fidelity(dsb):
    stats = []
    for im in dsb.images:
        masks = sorted((Path(im.path).parent.parent / "masks").glob("*.png"))
        assert len(masks) == len(im.objects)
        for obj, path in zip(im.objects, masks):
            _check_fidelity(im, obj, read_image(path) > 0, stats)
    assert len(stats) == 356


def test_bbbc039_counts_empty_image_and_tiny_objects(bbbc039):
    counts = {next(k for k in BBBC039_COUNTS if k in im.file_name): len(im.objects) for im in bbbc039.images}
    assert counts == BBBC039_COUNTS
    empty = next(im for im in bbbc039.images if "F13_s7" in im.file_name)
    assert empty.objects == [] and (empty.width, empty.height) == (696, 520)
    assert any("F13_s7" in w and "no objects" in w for w in bbbc039.warnings)
    h06 = next(im for im in bbbc039.images if "H06_s6" in im.file_name)
    assert min(_area(o) for o in h06.objects) == pytest.approx(6, abs=0.3)  # the 6-pixel nucleus is kept


def test_bbbc039_fidelity(bbbc039, bbbc039_pairs):
    stats = []
    for im, (_, mask_path) in zip(bbbc039.images, bbbc039_pairs):
        red = read_image(mask_path)[..., 0]
        objects = iter(im.objects)
        for value in np.unique(red)[1:]:
            patches, n = ndimage.label(red == value)
            for k in range(1, n + 1):
                _check_fidelity(im, next(objects), patches == k, stats)
        assert next(objects, None) is None
    assert len(stats) == 576


def test_stardist_counts_ids_and_two_part_label(stardist, stardist_pairs):
    big, small = stardist.images
    assert (len(big.objects), len(small.objects)) == (125, 65)
    assert max(o.id for o in big.objects) == 183  # non-consecutive ids are kept
    assert [o.id for o in small.objects] == list(range(1, 66))
    # SOURCES.md: one label in two parts (id 129: 392 px + a diagonally attached 2 px).
    assert [o.id for o in big.objects if len(o.polygons) > 1] == [129]
    assert len(next(o for o in big.objects if o.id == 129).polygons) == 2
    stats = []
    for im, (_, label_path) in zip(stardist.images, stardist_pairs):
        labels = read_image(label_path)
        for obj in im.objects:
            _check_fidelity(im, obj, labels == obj.id, stats)
    assert len(stats) == 190


def test_total_is_1122(dsb, bbbc039, stardist):
    assert dsb.object_count + bbbc039.object_count + stardist.object_count == 1122


def test_plan_to_project(stardist):
    project = stardist.to_project(5)
    assert project.id == 5 and project.synthetic is False
    assert project.images == stardist.images and project.categories == ["nucleus"]
    assert stardist.sources() == [im.path for im in stardist.images]
