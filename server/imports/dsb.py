"""2018 Data Science Bowl (BBBC038) folders: one binary mask file per object.

Layout (Kaggle ``stage1_train``): ``<root>/<ImageId>/images/<ImageId>.png`` and
``<root>/<ImageId>/masks/<MaskId>.png``, each mask a binary image (0 / 255) of the image's
size holding one nucleus.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np

from server.domain import ImageRecord, SegObject
from server.imports.masks import DEFAULT_MIN_IOU, DEFAULT_TOLERANCE, trace_mask
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS
from server.imports.bounds import MAX_OBJECTS_PER_IMAGE
from server.imports.plan import DEFAULT_MAX_FILE_BYTES, Checker, ImportPlan, absolute


def _visible_files(folder: Path) -> list[Path]:
    # Hidden files (.DS_Store, ._foo from macOS archives) are not part of a dataset.
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())


def _foreground(arr: np.ndarray) -> np.ndarray:
    """Object pixels of a mask file: any non-zero colour channel (alpha ignored)."""
    if arr.ndim == 3:
        return np.any(arr[..., :3] != 0, axis=-1)
    return arr != 0


def load_dsb_folders(root: os.PathLike | str, *, name: Optional[str] = None, category: str = "nucleus",
                     pixel_size_um: Optional[float] = None, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                      max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                     tolerance: float = DEFAULT_TOLERANCE) -> ImportPlan:
    """Import every ``<root>/<ImageId>/`` folder that has an ``images`` subfolder, in sorted
    order. Each mask file is one object (ids 1..k in sorted file-name order); its non-zero
    pixels are the object, possibly in several pieces (then several polygons). Masks may
    touch; pixels claimed by several masks are kept in each, with a warning.

    ``name`` defaults to the root folder's name. Raises ``ImportValidationError`` listing:
    a root without image folders, a missing ``images/<ImageId>.png``, missing or empty
    ``masks`` folders, files that are not images, files over ``max_file_bytes``, masks whose
    shape differs from the image, and empty masks (no object pixel).
    """
    check = Checker(max_file_bytes, max_image_pixels)
    check.options(pixel_size_um, tolerance)
    root = absolute(root)
    folders = sorted(p for p in root.iterdir() if (p / "images").is_dir()) if root.is_dir() else []
    if not root.is_dir():
        check.problem(f"missing DSB root folder: {root}")
    elif not folders:
        check.problem(f"no DSB image folders (<ImageId>/images/<ImageId>.png) under {root}")
    images: list[ImageRecord] = []
    for index, folder in enumerate(folders, start=1):
        image_path = folder / "images" / f"{folder.name}.png"
        pixels = check.read(image_path, "image")
        mask_dir = folder / "masks"
        mask_files = _visible_files(mask_dir) if mask_dir.is_dir() else []
        if not mask_files:
            check.problem(f"no mask files in {mask_dir}")
        if len(mask_files) > MAX_OBJECTS_PER_IMAGE:
            check.problem(f"{len(mask_files):,} mask files in {mask_dir}, more than the limit of "
                          f"{MAX_OBJECTS_PER_IMAGE:,} objects per image")
            continue
        if pixels is None:
            for mask_path in mask_files:  # still report what is wrong with the masks
                check.read(mask_path, "mask")
            continue
        height, width = pixels.shape[:2]
        del pixels  # only its size is needed from here on
        coverage = np.zeros((height, width), dtype=np.uint16)
        objects: list[SegObject] = []
        for mask_path in mask_files:
            arr = check.read(mask_path, "mask")
            if arr is None:
                continue
            if arr.shape[:2] != (height, width):
                check.problem(f"mask shape differs from image: {mask_path} is {arr.shape[1]}x{arr.shape[0]} (WxH), "
                              f"the image is {width}x{height}")
                continue
            fg = _foreground(arr)
            if not fg.any():
                check.problem(f"empty mask (no object pixel): {mask_path}")
                continue
            coverage += fg
            traced = trace_mask(fg, tolerance=tolerance)
            obj_id = len(objects) + 1
            if traced.iou < DEFAULT_MIN_IOU:
                check.warn(f"{folder.name}: mask {mask_path.name} traced with IoU {traced.iou:.3f} (< {DEFAULT_MIN_IOU})")
            objects.append(SegObject(id=obj_id, category=category, polygons=traced.polygons, source=mask_path.name))
        shared = int(np.count_nonzero(coverage > 1))
        if shared:
            check.warn(f"{folder.name}: {shared} pixel(s) belong to more than one mask")
        images.append(ImageRecord(id=index, file_name=image_path.name, width=int(width), height=int(height),
                                  path=str(image_path), objects=objects))
    check.raise_if_any()
    return ImportPlan(name=name or root.name, categories=[category], images=images, source_format="dsb2018",
                      pixel_size_um=pixel_size_um,
                      description=f"Imported from {len(images)} DSB2018 image folder(s) with one mask file per object.",
                      warnings=check.warnings)
