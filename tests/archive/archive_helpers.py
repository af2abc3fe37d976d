"""Helpers of the archive-writer tests: rasterising polygons with pycocotools, IoU, and the real
microscopy data of ``shared/data/cells`` (SOURCES.md there) turned into image records.

Real masks become polygons with ``skimage.measure.find_contours`` (level 0.5 on the padded
mask, so every outline closes; rings combined by symmetric difference, so holes and islands in
holes come out right). This is a test helper, independent of the importer in server/imports.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import shapely
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage
from shapely.geometry import Polygon as ShapelyPolygon
from skimage.measure import find_contours

from server.archive.geometry import from_shapely
from server.imaging import read_image
from server.imports import load_dsb_folders, load_label_images, load_patch_labels
from server.imports.labels import pair_by_stem
from server.domain import ImageRecord, SegObject


def square(x: float, y: float, s: float) -> list[tuple[float, float]]:
    return [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]


def rasterise(polygons, height: int, width: int, offset: tuple[float, float] = (0, 0)) -> np.ndarray:
    """Bool mask of domain polygons with pycocotools, holes subtracted per polygon, parts united.
    ``offset`` (x0, y0) is subtracted first, to rasterise into a crop."""
    out = np.zeros((height, width), dtype=bool)
    ox, oy = offset
    for rings in polygons:
        flats = [[c for x, y in ring for c in (float(x) - ox, float(y) - oy)] for ring in rings if len(ring) >= 3]
        if not flats:
            continue
        decoded = mask_utils.decode(mask_utils.frPyObjects(flats, height, width)).astype(bool)
        part = decoded[:, :, 0].copy()
        for k in range(1, decoded.shape[2]):
            part &= ~decoded[:, :, k]
        out |= part
    return out


def rasterise_crop(polygons) -> tuple[np.ndarray, tuple[int, int]]:
    """``(mask, (x0, y0))``: the pycocotools raster of ``polygons`` in a crop around their
    bounds (1 px margin) whose pixel (0, 0) is image pixel (x0, y0)."""
    xs = [x for p in polygons for x, _ in p[0]]
    ys = [y for p in polygons for _, y in p[0]]
    x0, y0 = int(np.floor(min(xs))) - 1, int(np.floor(min(ys))) - 1
    width, height = int(np.ceil(max(xs))) + 1 - x0, int(np.ceil(max(ys))) + 1 - y0
    return rasterise(polygons, height, width, (x0, y0)), (x0, y0)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def mask_polygons(mask: np.ndarray) -> list:
    """Domain polygons (COCO continuous coordinates) of one object's bool mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = rows[0], cols[0]
    crop = np.pad(mask[r0:rows[-1] + 1, c0:cols[-1] + 1], 1).astype(np.float32)
    geom = None
    for contour in find_contours(crop, 0.5):
        # find_contours gives (row, col) with pixel centres at integers; COCO puts them at +0.5.
        xy = contour[:-1, ::-1] + (c0 - 1 + 0.5, r0 - 1 + 0.5)
        if len(xy) < 3:
            continue
        ring = shapely.make_valid(ShapelyPolygon(xy))
        geom = ring if geom is None else geom.symmetric_difference(ring)
    return from_shapely(geom)


def _objects_from_labels(labels: np.ndarray, category: str) -> list[SegObject]:
    objects = []
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        full = np.zeros(labels.shape, dtype=bool)
        full[sl] = labels[sl] == index
        objects.append(SegObject(index, category, mask_polygons(full)))
    return objects


def _dsb(root: Path, next_id) -> list[ImageRecord]:
    records = []
    for folder in sorted((root / "bbbc038_dsb2018" / "stage1_train").iterdir()):
        image_path = next((folder / "images").glob("*.png"))
        with Image.open(image_path) as img:
            width, height = img.size
        objects = []
        for k, mask_path in enumerate(sorted((folder / "masks").glob("*.png")), start=1):
            with Image.open(mask_path) as img:
                objects.append(SegObject(k, "nucleus", mask_polygons(np.asarray(img) > 0)))
        records.append(ImageRecord(next_id(), image_path.name, width, height, str(image_path), objects))
    return records


def _bbbc039(root: Path, next_id) -> list[ImageRecord]:
    records = []
    base = root / "bbbc039_u2os"
    for image_path in sorted((base / "images").glob("*.tif")):
        with Image.open(base / "masks" / (image_path.stem + ".png")) as img:
            red = np.asarray(img)[:, :, 0]
        labels = np.zeros(red.shape, dtype=np.int32)
        count = 0
        for value in (1, 2, 3):
            lab, n = ndimage.label(red == value)
            labels[lab > 0] = lab[lab > 0] + count
            count += n
        height, width = red.shape
        records.append(ImageRecord(next_id(), image_path.name, width, height, str(image_path),
                                   _objects_from_labels(labels, "nucleus")))
    return records


def _stardist(root: Path, next_id) -> list[ImageRecord]:
    records = []
    base = root / "stardist_dsb2018"
    for folder in (base / "stardist" / "data" / "images", base / "tests" / "data"):
        labels = tifffile.imread(folder / "mask2d.tif").astype(np.int32)
        height, width = labels.shape
        records.append(ImageRecord(next_id(), "img2d.tif", width, height, str(folder / "img2d.tif"),
                                   _objects_from_labels(labels, "nucleus")))
    return records


def load_real_images(cells: Path) -> list[ImageRecord]:
    """The 17 real images with their objects, ids 1..17 in a fixed order."""
    counter = iter(range(1, 1000))
    next_id = lambda: next(counter)  # noqa: E731
    return _dsb(cells, next_id) + _bbbc039(cells, next_id) + _stardist(cells, next_id)


def fill_yolo(line: str, width: int, height: int) -> np.ndarray:
    """Bool mask of one YOLO label line rasterised as Ultralytics does (``polygon2mask``): the
    coordinates read as float32, times the image size, cast to int32 (truncation), then
    OpenCV's ``fillPoly``."""
    import cv2

    xy = np.array(line.split()[1:], dtype=np.float32).reshape(-1, 2)
    pixels = np.asarray(xy * np.array([width, height], dtype=np.float32), dtype=np.int32)
    mask = np.zeros((height, width), dtype=np.uint8)
    cv2.fillPoly(mask, [pixels.reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


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


# The real data imported with the hub's importers, and each object's SOURCE mask found through
# its ``source``: name -> function(cells folder) -> (ImportPlan, source_mask(image, source)).
def _stardist_imported(cells):
    root = cells / "stardist_dsb2018"
    pairs = [(root / "stardist/data/images/img2d.tif", root / "stardist/data/images/mask2d.tif"),
             (root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif")]
    labels = {k + 1: read_image(label) for k, (_, label) in enumerate(pairs)}
    return load_label_images(pairs), lambda image, source: labels[image.id] == source


def _bbbc039_imported(cells):
    pairs = pair_by_stem(cells / "bbbc039_u2os/images", cells / "bbbc039_u2os/masks")
    masks = {k + 1: read_image(mask) for k, (_, mask) in enumerate(pairs)}

    def source_mask(image, source):
        colour, x, y = re.fullmatch(r"#([0-9a-f]{6}) at \((\d+), (\d+)\)", source).groups()
        rgb = masks[image.id][..., :3]
        same = np.all(rgb == [int(colour[i:i + 2], 16) for i in (0, 2, 4)], axis=2)
        patches, _ = ndimage.label(same)  # 4-connected, as the import
        return patches == patches[int(y), int(x)]

    return load_patch_labels(pairs), source_mask


def _dsb_imported(cells):
    root = cells / "bbbc038_dsb2018/stage1_train"
    plan = load_dsb_folders(root)
    folders = {im.id: root / im.file_name[:-4] / "masks" for im in plan.images}
    return plan, lambda image, source: read_image(folders[image.id] / source) > 0


REAL_SETS = {"stardist": _stardist_imported, "bbbc039": _bbbc039_imported, "dsb2018": _dsb_imported}
