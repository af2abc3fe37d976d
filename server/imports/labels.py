"""Label-image imports: integer instance labels (cellpose, StarDist) and colour-coded patches
(BBBC039). Pure: files in, :class:`~server.imports.plan.ImportPlan` out."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage
from skimage import measure

from server.domain import ImageRecord, SegObject
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS
from server.imports.bounds import MAX_BOX_COVER, MAX_LABELS_PER_IMAGE
from server.imports.masks import DEFAULT_MIN_IOU, DEFAULT_TOLERANCE, trace_mask
from server.imports.plan import DEFAULT_MAX_FILE_BYTES, Checker, ImportPlan, absolute

PathLike = os.PathLike | str
Pair = tuple[PathLike, PathLike]


_DIRECT_LABELS = 1 << 20
"""Label values up to this are used as they are (``find_objects`` keeps one slot per value);
larger ones are first numbered 1..k."""


class TooManyLabels(ValueError):
    """A label image or patch mask is over a bound (``MAX_LABELS_PER_IMAGE`` distinct
    values, or boxes covering more than ``MAX_BOX_COVER`` times the image)."""


def _check_boxes(boxes: list, shape: tuple[int, ...]) -> None:
    count = sum(1 for sl in boxes if sl is not None)
    if count > MAX_LABELS_PER_IMAGE:
        raise TooManyLabels(f"holds {count:,} distinct labels, more than the limit of "
                            f"{MAX_LABELS_PER_IMAGE:,} per image")
    cover = sum((sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start) for sl in boxes if sl is not None)
    if cover > MAX_BOX_COVER * max(1, shape[0] * shape[1]):
        raise TooManyLabels(f"has objects whose bounding boxes together cover {cover / (shape[0] * shape[1]):,.0f} "
                            f"times the image, more than the limit of {MAX_BOX_COVER}")


def _numbered(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(plane, values)``: a label plane whose non-zero values are 1..k (or the values
    themselves when small enough) and the source value of each plane value (``values[k]``).
    Extra memory: one sorted copy, then 4 bytes per pixel, made row block by row block."""
    top = int(labels.max()) if labels.size else 0
    if top <= _DIRECT_LABELS:
        return labels, np.arange(top + 1)
    values = np.unique(labels)
    if values[0] != 0:
        values = np.concatenate([[0], values])
    if len(values) - 1 > MAX_LABELS_PER_IMAGE:
        raise TooManyLabels(f"holds {len(values) - 1:,} distinct labels, more than the limit of "
                            f"{MAX_LABELS_PER_IMAGE:,} per image")
    plane = np.empty(labels.shape, dtype=np.uint32)
    step = max(1, (1 << 22) // max(1, labels.shape[1]))
    for row in range(0, labels.shape[0], step):
        plane[row:row + step] = np.searchsorted(values, labels[row:row + step])
    return plane, values


def objects_from_labels(labels: np.ndarray, category: str, *, where: str = "",
                        warnings: Optional[list[str]] = None,
                        tolerance: float = DEFAULT_TOLERANCE) -> list[SegObject]:
    """One ``SegObject`` per distinct non-zero value of an integer ``(H, W)`` label array, with
    the value as its id (ids need not be consecutive; a value in several separate pieces is
    one object with several polygons). Objects come in increasing id order. Polygons are
    traced with :func:`server.imports.masks.trace_mask`; an object whose rasterised polygons
    reach IoU < 0.99 with its pixels adds a line to ``warnings`` (``where`` names the image).
    Raises :class:`TooManyLabels` past ``MAX_LABELS_PER_IMAGE`` values (before tracing any)."""
    plane, values = _numbered(labels)
    boxes = ndimage.find_objects(plane)
    _check_boxes(boxes, plane.shape)
    objects = []
    for k, sl in enumerate(boxes, start=1):
        if sl is None:
            continue
        label_id = int(values[k])
        traced = trace_mask(plane[sl] == k, (sl[1].start, sl[0].start), tolerance=tolerance)
        if traced.iou < DEFAULT_MIN_IOU and warnings is not None:
            warnings.append(f"{where}: object {label_id} traced with IoU {traced.iou:.3f} (< {DEFAULT_MIN_IOU})")
        objects.append(SegObject(id=label_id, category=category, polygons=traced.polygons, source=label_id))
    return objects


def _label_plane(arr: np.ndarray, path: Path, check: Checker) -> Optional[np.ndarray]:
    """The integer label plane of a label file, or None with a problem recorded."""
    if arr.ndim == 3:
        colour = arr[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            check.problem(
                f"label image is in colour, not an integer label image: {path} "
                "(for colour-coded masks use the patch-label import)"
            )
            return None
        arr = colour[..., 0]
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            check.problem(f"label image holds non-integer values: {path}")
            return None
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        check.problem(f"label image has unsupported data type {arr.dtype}: {path}")
        return None
    if np.issubdtype(arr.dtype, np.signedinteger) and arr.size and arr.min() < 0:
        check.problem(f"label image holds negative values: {path}")
        return None
    return arr


def _pairs_plan(pairs: Sequence[Pair], check: Checker, what: str, to_objects, *, name, category,
                pixel_size_um, description, source_format) -> ImportPlan:
    if not pairs:
        check.problem("no images given")
    images: list[ImageRecord] = []
    for index, (image_path, label_path) in enumerate(pairs, start=1):
        image_path, label_path = absolute(image_path), absolute(label_path)
        pixels = check.read(image_path, "image")
        labels = check.read(label_path, what)
        if pixels is None or labels is None:
            continue
        if labels.shape[:2] != pixels.shape[:2]:
            check.problem(
                f"mask shape differs from image: {label_path} is {labels.shape[1]}x{labels.shape[0]} (WxH), "
                f"{image_path} is {pixels.shape[1]}x{pixels.shape[0]}"
            )
            continue
        height, width = pixels.shape[:2]
        del pixels  # only its size is needed from here on: one image in memory at a time
        try:
            objects = to_objects(labels, label_path, image_path.name)
        except TooManyLabels as exc:
            check.problem(f"{what} {label_path} {exc}")
            continue
        finally:
            del labels
        if objects is None:
            continue
        if not objects:
            check.warn(f"{image_path.name}: no objects (the {what} is all background)")
        images.append(ImageRecord(id=index, file_name=image_path.name, width=int(width),
                                  height=int(height), path=str(image_path), objects=objects))
    check.raise_if_any()
    folder = absolute(pairs[0][0]).parent
    if folder.name.lower() in ("images", "image", "imgs", "img", "raw") and folder.parent.name:
        folder = folder.parent  # .../<dataset>/images/x.tif: the dataset's name
    default_name = folder.name or "Imported images"
    return ImportPlan(name=name or default_name, categories=[category], images=images,
                      source_format=source_format, pixel_size_um=pixel_size_um,
                      description=description, warnings=check.warnings)


def load_label_images(pairs: Sequence[Pair], *, name: Optional[str] = None, category: str = "nucleus",
                      pixel_size_um: Optional[float] = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                      max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                      tolerance: float = DEFAULT_TOLERANCE) -> ImportPlan:
    """Import ``(image_path, label_path)`` pairs where the label file is an integer instance
    label image of the same height and width (PNG or TIFF, 8/16/32-bit or integral float;
    0 = background, each other value one object, ids need not be consecutive; grey stored
    as RGB(A) is accepted) -- the format cellpose (``*_cp_masks.png``) and StarDist write.

    ``name`` defaults to the first image's folder name. Raises ``ImportValidationError``
    listing every missing, oversized (``max_file_bytes``) or non-image file, every label
    image whose shape differs from its image or that is in colour, non-integer or negative.
    An all-background label image is accepted with a warning (an image without objects).
    """
    check = Checker(max_file_bytes, max_image_pixels)
    check.options(pixel_size_um, tolerance)

    def to_objects(arr, label_path, image_name):
        plane = _label_plane(arr, label_path, check)
        if plane is None:
            return None
        return objects_from_labels(plane, category, where=image_name, warnings=check.warnings, tolerance=tolerance)

    return _pairs_plan(pairs, check, "label image", to_objects, name=name, category=category,
                       pixel_size_um=pixel_size_um, source_format="label-images",
                       description=f"Imported from {len(pairs)} image(s) with integer label images.")


def patch_key_name(arr: np.ndarray):
    """How ``patch_keys`` values of ``arr`` are named in an object's ``source``: ``#rrggbb``
    for 8-bit colour, ``rgb(r, g, b)`` for deeper colour, the value itself for one channel."""
    if arr.ndim == 2:
        return str
    m = int(np.iinfo(arr.dtype).max) + 1 if np.issubdtype(arr.dtype, np.integer) else 1 << 16
    if m == 256:
        return lambda key: f"#{key:06x}"
    return lambda key: f"rgb({key // (m * m)}, {key // m % m}, {key % m})"


def patch_keys(arr: np.ndarray) -> np.ndarray:
    """The ``(H, W)`` patch key of a colour-coded mask: for RGB(A), the colour as one number
    ``(R * M + G) * M + B`` (``M`` = 1 + the dtype's max; pixels with alpha 0 are
    background), for a single-channel image the value itself. 0 = background. The keys of
    8-bit colours are uint32 (4 bytes per pixel), others int64."""
    if arr.ndim == 2:
        return arr if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.int64)
    small = arr.dtype == np.uint8
    kind = np.uint32 if small else np.int64
    m = 256 if small else int(np.iinfo(arr.dtype).max) + 1 if np.issubdtype(arr.dtype, np.integer) else 1 << 16
    keys = arr[..., 0].astype(kind)
    keys *= m
    keys += arr[..., 1]
    keys *= m
    keys += arr[..., 2]
    if arr.shape[-1] == 4:
        keys[arr[..., 3] == 0] = 0
    return keys


def objects_from_patches(keys: np.ndarray, category: str, *, connectivity: int = 4, where: str = "",
                         warnings: Optional[list[str]] = None,
                         tolerance: float = DEFAULT_TOLERANCE, key_name=str) -> list[SegObject]:
    """One ``SegObject`` per connected patch of one non-zero key value (``connectivity`` 4 or
    8), ids 1..k in order of (key value, scan order of the patch's first pixel). Two touching
    patches of different values are two objects; two separate patches of the same value too.
    The patches are found in one pass (scikit-image ``measure.label``, equal neighbours
    connected), whatever the number of values. Each object's ``source`` is
    ``"<key_name(value)> at (x, y)"``, (x, y) being the patch's first pixel in reading order
    (column, row). Raises :class:`TooManyLabels` past ``MAX_LABELS_PER_IMAGE`` patches
    (before tracing any)."""
    patches = measure.label(keys, background=0, connectivity=1 if connectivity == 4 else 2)
    boxes = ndimage.find_objects(patches)
    _check_boxes(boxes, patches.shape)
    order = []
    for k, sl in enumerate(boxes, start=1):
        top, left = sl[0].start, sl[1].start  # the first pixel in scan order is on the box's top row
        first = left + int(np.flatnonzero(patches[top, sl[1]] == k)[0])
        order.append((int(keys[top, first]), k, sl, (first, top)))
    order.sort(key=lambda item: (item[0], item[1]))
    objects: list[SegObject] = []
    for value, k, sl, (x, y) in order:
        traced = trace_mask(patches[sl] == k, (sl[1].start, sl[0].start), tolerance=tolerance)
        obj_id = len(objects) + 1
        if traced.iou < DEFAULT_MIN_IOU and warnings is not None:
            warnings.append(f"{where}: object {obj_id} traced with IoU {traced.iou:.3f} (< {DEFAULT_MIN_IOU})")
        objects.append(SegObject(id=obj_id, category=category, polygons=traced.polygons,
                                 source=f"{key_name(value)} at ({x}, {y})"))
    return objects


def load_patch_labels(pairs: Sequence[Pair], *, connectivity: int = 4, name: Optional[str] = None,
                      category: str = "nucleus", pixel_size_um: Optional[float] = None,
                      max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                      max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                      tolerance: float = DEFAULT_TOLERANCE) -> ImportPlan:
    """Import ``(image_path, mask_path)`` pairs where the mask is colour-coded: every connected
    patch (``connectivity`` 4 or 8) of one non-zero value/colour is one object, and touching
    objects differ in value. This is BBBC039's format (RGBA PNG, instance colour in R = 1..3,
    G = B = 0); any RGB(A) colours or single-channel values work the same way (see
    :func:`patch_keys`). Decoding ``mask > 0`` as one binary image instead would merge
    touching nuclei.

    Raises ``ValueError`` for a connectivity other than 4 or 8 and ``ImportValidationError``
    for the same file problems as :func:`~server.imports.labels.load_label_images`. An
    all-background mask gives an image without objects (with a warning).
    """
    if connectivity not in (4, 8):
        raise ValueError("connectivity must be 4 or 8")
    check = Checker(max_file_bytes, max_image_pixels)
    check.options(pixel_size_um, tolerance)

    def to_objects(arr, label_path, image_name):
        return objects_from_patches(patch_keys(arr), category, connectivity=connectivity, where=image_name,
                                    warnings=check.warnings, tolerance=tolerance, key_name=patch_key_name(arr))

    return _pairs_plan(pairs, check, "mask", to_objects, name=name, category=category,
                       pixel_size_um=pixel_size_um, source_format="patch-labels",
                       description=f"Imported from {len(pairs)} image(s) with colour-coded masks "
                                   f"({connectivity}-connected patches).")


_IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


def pair_by_stem(images_dir: PathLike, labels_dir: PathLike, *, label_suffix: str = "") -> list[tuple[Path, Path]]:
    """Pair every image file in ``images_dir`` (png/tif/tiff/jpg/jpeg/bmp, hidden files
    skipped, sorted by name) with the file in ``labels_dir`` whose stem is the image's stem
    plus ``label_suffix`` (e.g. ``"_cp_masks"`` for cellpose; any image extension). The two
    folders may be the same. Raises ``ImportValidationError`` listing missing folders, images
    without a label file and stems matching several label files."""
    images_dir, labels_dir = absolute(images_dir), absolute(labels_dir)
    check = Checker()
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            check.problem(f"missing folder: {folder}")
    check.raise_if_any()

    def listing(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _IMAGE_SUFFIXES)

    labels: dict[str, list[Path]] = {}
    for path in listing(labels_dir):
        labels.setdefault(path.stem, []).append(path)
    pairs = []
    for image in listing(images_dir):
        if label_suffix and image.stem.endswith(label_suffix):
            continue  # a label file sharing the folder with its image
        found = labels.get(image.stem + label_suffix, [])
        found = [p for p in found if p != image]
        if not found:
            check.problem(f"no label file for image {image.name} (expected {image.stem + label_suffix}.* in {labels_dir})")
        elif len(found) > 1:
            check.problem(f"several label files for image {image.name}: {', '.join(p.name for p in found)}")
        else:
            pairs.append((image, found[0]))
    if not pairs and not check.problems:
        check.problem(f"no images in {images_dir}")
    check.raise_if_any()
    return pairs
