"""Getting projects in: pure loaders that turn images plus segmentations into an ImportPlan.

Formats: integer label images (cellpose, StarDist), DSB2018 folders (one mask file per
object), colour-coded patch masks (BBBC039) and COCO instance segmentation. Masks become
polygons with holes in the COCO pixel convention (see ``server.imports.masks``). Loaders
never touch the database; they raise ``ImportValidationError`` listing every problem.
"""
from server.imports.coco import load_coco
from server.imports.dsb import load_dsb_folders
from server.imports.labels import load_label_images, load_patch_labels, pair_by_stem
from server.imports.masks import mask_to_polygons, polygons_to_mask, trace_mask
from server.imports.plan import DEFAULT_MAX_FILE_BYTES, ImportPlan, ImportValidationError

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "ImportPlan",
    "ImportValidationError",
    "load_coco",
    "load_dsb_folders",
    "load_label_images",
    "load_patch_labels",
    "mask_to_polygons",
    "pair_by_stem",
    "polygons_to_mask",
    "trace_mask",
]
