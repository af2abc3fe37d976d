"""``python -m server import ...``: bring your own images and segmentations.

Verbs (each validates everything first; nothing is stored unless the whole input is valid):
- ``labels IMAGES_DIR LABELS_DIR [--label-suffix _cp_masks]`` or
  ``labels --pair IMAGE LABEL [--pair ...]``: integer label images (cellpose, StarDist);
- ``patches IMAGES_DIR MASKS_DIR``: colour-coded masks (BBBC039), paired by file stem;
- ``dsb ROOT``: DSB2018 folders ``<id>/images/<id>.png`` + ``<id>/masks/*.png``;
- ``coco JSON IMAGES_DIR``: COCO instance segmentation.
Common options: ``--data-dir``, ``--name``, ``--category``, ``--pixel-size-um``,
``--max-file-mb``, ``--dry-run`` (validate and summarise only).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS
from server.imports.plan import DEFAULT_MAX_FILE_BYTES, ImportPlan, ImportValidationError


def _pixel_size(value: str) -> float:
    size = float(value)
    if not 0.001 <= size <= 1000:
        raise argparse.ArgumentTypeError("pixel size must be between 0.001 and 1000 micrometres")
    return size


def pixel_count(value: str) -> int:
    """``--max-image-pixels``: a whole number of pixels, at least 1 (``_`` and ``,`` allowed)."""
    try:
        count = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of pixels: {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return count


def _plan(args: argparse.Namespace) -> ImportPlan:
    from server.imports import coco, dsb, labels

    limit = int(args.max_file_mb * 1024 * 1024)
    common = dict(name=args.name, pixel_size_um=args.pixel_size_um, max_file_bytes=limit,
                  max_image_pixels=args.max_image_pixels)
    if args.format == "labels":
        if args.pair:
            pairs = [tuple(p) for p in args.pair]
            if args.images_dir or args.labels_dir:
                raise ImportValidationError(["give either IMAGES_DIR LABELS_DIR or --pair, not both"])
        elif args.images_dir and args.labels_dir:
            pairs = labels.pair_by_stem(args.images_dir, args.labels_dir, label_suffix=args.label_suffix)
        else:
            raise ImportValidationError(["give IMAGES_DIR and LABELS_DIR, or one --pair IMAGE LABEL per image"])
        return labels.load_label_images(pairs, category=args.category, **common)
    if args.format == "patches":
        pairs = labels.pair_by_stem(args.images_dir, args.masks_dir)
        return labels.load_patch_labels(pairs, connectivity=args.connectivity, category=args.category, **common)
    if args.format == "dsb":
        return dsb.load_dsb_folders(args.root, category=args.category, **common)
    return coco.load_coco(args.json, args.images_dir, **common)


def cmd_import(args: argparse.Namespace) -> int:
    """Run one import verb; exit code 0 on success, 2 when the input is refused."""
    try:
        plan = _plan(args)
    except ImportValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    summary = f"{plan.name!r}: {len(plan.images)} image(s), {plan.object_count} object(s), categories {plan.categories}"
    if args.dry_run:
        print(f"valid (dry run, nothing stored): {summary}")
        return 0
    from server.db import Database
    from server.projects import persist_project

    from server.guard.private_files import make_private

    data_dir = make_private(Path(args.data_dir).expanduser().resolve())
    files_root = data_dir / "files"
    files_root.mkdir(exist_ok=True)
    db = Database(data_dir / "cellhub.sqlite3")
    owner_id = None
    if args.owner is not None:
        from server import accounts

        owner_id = accounts.user_id(db, args.owner)
        if owner_id is None:
            print(f"error: there is no user named {args.owner!r}; add one with: python -m server users add {args.owner}",
                  file=sys.stderr)
            return 2
    project_id = persist_project(db, files_root, plan.to_project(), plan.sources(), owner_id=owner_id)
    print(f"imported project {project_id}: {summary}")
    return 0


def add_import_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``import`` verb and its formats to the service's sub-command parser."""
    from server.cli import DEFAULT_DATA_DIR

    parser = sub.add_parser("import", help="import images with their segmentations as a new project")
    formats = parser.add_subparsers(dest="format", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
        p.add_argument("--name", help="project name (default: from the input)")
        p.add_argument("--category", default="nucleus", help="category of every object (not for coco)")
        p.add_argument("--pixel-size-um", type=_pixel_size, help="micrometres per pixel")
        p.add_argument("--max-file-mb", type=float, default=DEFAULT_MAX_FILE_BYTES / 2**20,
                       help="refuse any file larger than this")
        p.add_argument("--max-image-pixels", type=pixel_count, default=DEFAULT_MAX_IMAGE_PIXELS,
                       help="refuse any image, mask or label image of more pixels (all pages together) "
                            "than this (default 100,000,000)")
        p.add_argument("--dry-run", action="store_true", help="validate and summarise only")
        p.add_argument("--owner", metavar="NAME",
                       help="the user who owns the new project (default: the first user); private to them until shared")
        p.set_defaults(func=cmd_import)

    p = formats.add_parser("labels", help="integer label images (cellpose, StarDist), paired by stem or --pair")
    p.add_argument("images_dir", nargs="?")
    p.add_argument("labels_dir", nargs="?")
    p.add_argument("--pair", nargs=2, action="append", metavar=("IMAGE", "LABEL"),
                   help="one image and its label image (repeat per image) instead of the two folders")
    p.add_argument("--label-suffix", default="", help="label stem = image stem + this (cellpose: _cp_masks)")
    common(p)
    p = formats.add_parser("patches", help="colour-coded masks (BBBC039): each patch of one colour is one object")
    p.add_argument("images_dir")
    p.add_argument("masks_dir")
    p.add_argument("--connectivity", type=int, choices=(4, 8), default=4)
    common(p)
    p = formats.add_parser("dsb", help="DSB2018 folders: <id>/images/<id>.png + <id>/masks/*.png")
    p.add_argument("root")
    common(p)
    p = formats.add_parser("coco", help="COCO instance segmentation JSON + its images folder")
    p.add_argument("json")
    p.add_argument("images_dir")
    common(p)
