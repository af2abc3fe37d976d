"""YOLO segmentation labels in the layout Ultralytics reads (docs.ultralytics.com/datasets/segment).

Source definition: Ultralytics' "Instance Segmentation Datasets Overview" and its label reader
``ultralytics.data.utils.verify_image_label``: one ``<image stem>.txt`` per image, one line per
object ``<class> <x1> <y1> <x2> <y2> ...``, class a 0-based index into ``names`` of
``data.yaml``, coordinates normalised by the image width/height to 0..1, no header, no comments.
An image without objects gets an empty file (background image).

Holes and multi-part objects: a YOLO line is one polygon and has no holes. We keep one line per
object (one instance, as in the other formats) and join its parts and holes into a single ring
with zero-width bridges between closest vertices (``geometry.bridged_ring``; the way Ultralytics'
own COCO converter ``merge_multi_segment`` joins the parts of a multi-polygon object). A bridge
is walked once each way, so filling the ring (cv2.fillPoly in Ultralytics, or any even-odd or
non-zero rasteriser) gives back the parts with their holes left empty.

The geometry is first repaired (``to_shapely``) and clipped to the image rectangle, because
Ultralytics rejects a whole label file with a coordinate outside 0..1. Coordinates are written
with 6 decimals (1e-6 of the image size). Objects with nothing left (no area inside the image,
or fewer than 3 distinct points after rounding) are skipped with a warning.

Ultralytics finds a label by replacing the last ``/images/`` of the image path with
``/labels/``: ``labels/`` must sit beside ``images/``. ``data.yaml`` therefore names the image
folder relative to itself (``images_dir``) and the archive README says where to put ``labels/``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import yaml
from shapely.geometry import box

from server.archive.geometry import bridged_ring, polygonal, to_shapely
from server.domain import ImageRecord, SegObject

_DECIMALS = 6


def yolo_line(obj: SegObject, image: ImageRecord, class_index: int) -> tuple[Optional[str], Optional[str]]:
    """``(line, None)`` for one object (no trailing newline), or ``(None, warning)`` if skipped.

    ``class_index`` is the 0-based class; ``image.width``/``height`` (px) normalise x/y.
    """
    where = f"YOLO: image {image.file_name!r} object {obj.id}"
    if image.width <= 0 or image.height <= 0:
        return None, f"{where} skipped: image has no size"
    geom = to_shapely(obj.polygons)
    if geom.is_empty:
        return None, f"{where} skipped: no area"
    clipped = polygonal(geom.intersection(box(0, 0, image.width, image.height)))
    if clipped.is_empty:
        return None, f"{where} skipped: outside the image"
    ring = bridged_ring(clipped)
    norm = np.round(ring / np.array([image.width, image.height], dtype=np.float64), _DECIMALS)
    norm = np.clip(norm, 0.0, 1.0)
    keep = np.ones(len(norm), dtype=bool)
    keep[1:] = np.any(norm[1:] != norm[:-1], axis=1)
    norm = norm[keep]
    if len(norm) > 1 and np.array_equal(norm[0], norm[-1]):
        norm = norm[:-1]
    if len({(a, b) for a, b in norm.tolist()}) < 3:
        return None, f"{where} skipped: degenerate after normalising (smaller than 1e-6 of the image)"
    flat = norm.ravel().tolist()
    coords = (f"%.{_DECIMALS}f " * len(flat) % tuple(flat)).rstrip()
    return f"{class_index} {coords}", None


def label_text(image: ImageRecord, class_index: dict[str, int], warnings: list[str]) -> str:
    """The whole ``<stem>.txt`` of one image (``""`` for no objects; ``\\n`` after every line).

    ``class_index`` maps category name -> 0-based class; skip warnings go to ``warnings``.
    """
    lines = []
    for obj in image.objects:
        line, warning = yolo_line(obj, image, class_index[obj.category])
        if warning:
            warnings.append(warning)
        else:
            lines.append(line)
    return "".join(line + "\n" for line in lines)


def classes_txt(class_names: Sequence[str]) -> str:
    """``classes.txt``: one class name per line, line k = class k."""
    return "".join(f"{name}\n" for name in class_names)


def data_yaml(class_names: Sequence[str], images_dir: str = "images") -> str:
    """Ultralytics ``data.yaml``: ``train``/``val`` = ``images_dir`` (relative to the yaml's
    folder, which Ultralytics uses as dataset root when ``path`` is absent), ``nc`` and
    ``names`` as ``{index: name}``. There is no split: train and val are the same images."""
    doc = {
        "train": images_dir,
        "val": images_dir,
        "nc": len(class_names),
        "names": {i: name for i, name in enumerate(class_names)},
    }
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
