"""The archive's README.md: layout, and each format's and metric's definition, source and
coordinate convention, the agreement of the metrics with regionprops, and the warnings."""
from __future__ import annotations

from typing import Sequence

from app.models import ExportOptions
from server.archive.agreement import agreement_table
from server.archive.metrics import METRICS, SOURCE_ID_DEFINITION, unit_suffix
from server.archive.yolo import NUDGE, YOLO_DIR
from server.domain import ImageRecord, ProjectRecord

_SOURCE = ("`source` is the object's identity in the data it was imported from: the label value (integer "
           "label images), the mask file name (one mask file per object), `\"<colour> at (x, y)\"` with the "
           "patch's first pixel in reading order (colour-coded masks), or the COCO annotation id; null when "
           "unknown.")


def _coco(images: str, max_objects: int) -> list[str]:
    dets = max(100, max_objects)
    return [
        "Source: the COCO data format (cocodataset.org/#format-data), read with pycocotools.",
        f"- `images`: `id` (project image id), `file_name` (name under `{images}/`), `width`, `height`.",
        "- `categories`: `id` 1.. in project order, `name`.",
        "- `annotations`: one per object. `segmentation` is a list of polygons `[x1, y1, x2, y2, ...]`, one "
        "per part. COCO polygons cannot have holes, so an object with a hole is written as a compressed RLE "
        "mask (`{size: [height, width], counts}`, pycocotools `mask.encode`) of its parts minus its holes. "
        "`iscrowd` is 0 for every object, RLE ones included: each is a single object, not a crowd region "
        "(COCOeval ignores crowd regions when matching). `area` is the exact polygon area in px^2 with holes "
        "subtracted; `bbox` is `[x, y, width, height]` of the polygon bounds. Two extra keys, which COCO "
        "tools ignore: `object_id` (the project's object id) and `source`. " + _SOURCE,
        "- Coordinates follow pycocotools' convention: continuous pixels, pixel (column c, row r) covers "
        "[c, c+1) x [r, r+1). Rasterised by pycocotools (`annToMask`), an outline traced along pixel "
        "edges gives back exactly the pixels it was traced from.",
        "- Read it with `pycocotools.coco.COCO(path)`; `annToMask(ann)` gives each object's mask.",
        f"- COCOeval counts at most `maxDets` detections per image (100 by default), and images here hold up "
        f"to {max_objects} objects: set `E.params.maxDets = [1, 10, {dets}]` before `evaluate()`, or the "
        "objects past the 100th of an image count as missed. `summarize()` then computes AP@[.5:.95] at 100 "
        "detections still (it prints -1 for it): read it as `p = E.eval['precision'][:, :, :, 0, -1]; "
        "p[p > -1].mean()`; the other AP and AR lines use the last `maxDets`.",
    ]


def _yolo(include_images: bool) -> list[str]:
    where = (f"`{YOLO_DIR}/images/` holds the image files." if include_images else
             f"This archive holds no image files: put them in `{YOLO_DIR}/images/` (same names as in "
             "`metrics/` `image_file` or COCO `file_name`) before training.")
    return [
        "Source: Ultralytics' segmentation dataset format (docs.ultralytics.com/datasets/segment, as read "
        "by ultralytics 8.4). Train with `yolo segment train data=yolo/data.yaml` (or "
        "`YOLO(model).train(data=\"yolo/data.yaml\")`) from any folder: no edits needed.",
        f"- `{YOLO_DIR}/data.yaml`: `path` is empty on purpose (Ultralytics then takes the yaml's folder as "
        "the dataset root; a relative path would be resolved from the working directory), `train` and `val` "
        "are `images` (the same images: there is no train/val split), `names` maps class index to category.",
        f"- {where} `{YOLO_DIR}/labels/<stem>.txt`: one per image, with the image's stem, beside `images/` "
        "as Ultralytics looks for it (it replaces `/images/` by `/labels/` in the image path).",
        "- One line per object, `class x1 y1 x2 y2 ...`: class 0-based (line k of `classes.txt`, `names` in "
        "`data.yaml`), at least 3 points, coordinates divided by the image width and height (0..1, 6 "
        "decimals). An image without objects has an empty file.",
        "- Coordinates follow the convention YOLO's consumers rasterise with: Ultralytics (`polygon2mask`) "
        "and supervision multiply them by the image size, cast to int32 and fill with OpenCV `fillPoly`, "
        "which also fills the pixels the outline runs through. So every vertex is a pixel index, the centre "
        "of one of the object's border pixels: each vertex (x, y) of the project's polygon (COCO "
        f"coordinates) becomes round(x - 0.5), round(y - 0.5) after a nudge of {NUDGE} px into the object, "
        "and is written as the smallest 6-decimal value that multiplies back (in float32 too) to at least "
        "that index, so the int32 cast gives it back exactly. Filled that way, each object is its source "
        "pixels again (no one-pixel growth to the right and bottom).",
        "- A YOLO polygon has no holes, and one line is one object: an object's parts and holes are joined "
        "into one ring by zero-width bridges between their closest vertices (as Ultralytics' own COCO "
        "converter does for multi-part objects). Filling that ring leaves the holes empty; the bridge itself "
        "is a one-pixel line. Objects reaching outside the image are clipped to it.",
    ]


_NATIVE = [
    "The project's own format, `schema: cellhub.project`, `schema_version: 1`: the project (id, name, "
    "description, categories, pixel_size_um, synthetic, import_warnings) and every image with its objects "
    "(`id`, `category`, `source`, `polygons`); `polygons` are exactly as stored (full precision, holes and "
    "parts kept, COCO coordinates), so the file imports back without loss. " + _SOURCE,
]


def _layout(options: ExportOptions, images: str) -> list[str]:
    ann, out = options.annotation_formats, []
    if "coco" in ann:
        out.append("- `annotations/coco/annotations.json`: COCO instance segmentation")
    if "yolo" in ann:
        out.append(f"- `{YOLO_DIR}/data.yaml`, `classes.txt`, `labels/<stem>.txt`: YOLO segmentation for "
                   "Ultralytics")
    if "json" in ann:
        out.append("- `annotations/json/project.json`: the project's own lossless JSON")
    out += [f"- `metrics/metrics.{fmt}`: shape metrics, one row per object" for fmt in options.metrics_formats]
    if options.include_images:
        out.append(f"- `{images}/<name>`: the original image files, byte for byte")
    if options.include_visualizations:
        out.append("- `visualizations/<stem>_overlay.png`: each image with its outlines and object ids drawn on it")
    out += [
        "- `metadata.json`: project, export options, counts, software versions, times, warnings, and "
        "the SHA-256 and size of every other file in this archive",
        "- `README.md`: this file",
        "",
        f"Every format names an image the same way: its name under `{images}/`, unique in the archive (a "
        "repeated name gets `_2`, `_3`, ... before the extension, in project order). `<stem>` is that "
        "name without its extension.",
    ]
    return out


def _metrics(options: ExportOptions) -> list[str]:
    s = options.pixel_size_um
    scale = (f"Pixel size {s} um/px: lengths are multiplied by it, areas by its square."
             if s else "No pixel size was given: lengths are in px, areas in px^2.")
    out = [
        "Polygon model: one row per object, computed from its polygons, not from a rasterised mask. "
        f"{scale} The unit is part of each column name. Holes are subtracted from the area and "
        "their outlines count in the perimeter; the parts of an object are measured together. "
        "Objects without area are left out (see `warnings`). Lengths are those of the "
        "polygons as stored: an outline traced along pixel edges keeps some of the pixel staircase, "
        "which makes the perimeter longer, and circularity and convexity lower, than for the smooth shape.",
        "CSV: comma-separated, header row, UTF-8. A text cell that starts with =, +, -, @, tab or carriage "
        "return gets a single quote (') before it, so that a spreadsheet shows it as text instead of running "
        "it as a formula (OWASP, \"CSV Injection\"); numbers, negative ones too, are written as they are. "
        "XLSX: sheet `metrics` (texts are text cells, as given), and sheet `columns` with these "
        "definitions. JSON: `columns` (these definitions) and `rows`.",
        "",
        "| column | definition | source |",
        "| --- | --- | --- |",
        "| `image_id`, `image_file`, `object_id`, `category` | which object | project |",
        f"| `source_id` | {SOURCE_ID_DEFINITION} | import |",
    ]
    out += [f"| `{m.key}{unit_suffix(m.kind, s)}` | {m.definition} | {m.source} |" for m in METRICS]
    out += ["", "### Agreement with scikit-image regionprops", "",
            "regionprops measures pixel masks; these metrics measure polygons. On the real data the hub is "
            "tested with (1,122 nuclei, by the size of their source mask), in px units:", "",
            *agreement_table()]
    return out


def _visualizations(options: ExportOptions) -> list[str]:
    v = options.visualization
    numbers = (f"Object ids in {v.font_size} px, each on its object or, where there is no room, moved nearby "
               "with a thin leader line to it (and made smaller if need be, down to a readable minimum); "
               "numbers never overlap each other or leave the image (a number with no room at all is left "
               "out, with a warning). " if v.show_numbers else "No object ids. ")
    return [
        f"PNG, same size as the image. Outlines {v.outline_color}, {v.stroke_width} px, opacity {v.opacity}; "
        f"hole outlines {v.hole_color}, dashed over a dark edge and drawn above every other outline, so an "
        f"object inside another's hole stays visible. {numbers}A legend sits in the corner with the fewest "
        "objects (on images large enough for it). 16-bit and dim 8-bit images are contrast-stretched for "
        "display only (0.5th to 99.9th percentile, over at least 1/8 of the 8-bit range or 256 levels of "
        f"16-bit, so an empty or flat image stays dark instead of turning noise into texture); the files in "
        "the images folder are the originals.",
    ]


def readme_text(project: ProjectRecord, options: ExportOptions, images: Sequence[ImageRecord], created_at: str,
                warnings: Sequence[str], images_dir: str) -> str:
    """README.md of an archive made with ``options`` of ``images`` (only the selected parts are
    described); ``created_at`` is an ISO-8601 UTC time; ``warnings`` those of ``metadata.json``;
    ``images_dir`` the folder of the image files in the archive."""
    objects = sum(len(im.objects) for im in images)
    most = max((len(im.objects) for im in images), default=0)
    out = [f"# Export of project \"{project.name}\"", "",
           f"Created {created_at}: {len(images)} images, {objects} objects."]
    if project.synthetic:
        out += ["", "**This project is synthetic demo data made by the program, not a microscopy experiment.**"]
    out += ["", "## Layout", "", *_layout(options, images_dir), "", "## Coordinates", "",
            "Pixels, continuous, origin at the top-left corner of the image: pixel (column c, row r) covers "
            "[c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5) (the COCO convention). A polygon is an "
            "exterior ring plus optional hole rings; an object may have several polygons. YOLO labels use "
            "pixel indices instead (see YOLO)."]
    if "coco" in options.annotation_formats:
        out += ["", "## COCO (`annotations/coco/annotations.json`)", "", *_coco(images_dir, most)]
    if "yolo" in options.annotation_formats:
        out += ["", f"## YOLO segmentation (`{YOLO_DIR}/`)", "", *_yolo(options.include_images)]
    if "json" in options.annotation_formats:
        out += ["", "## Project JSON (`annotations/json/project.json`)", "", *_NATIVE]
    if options.metrics_formats:
        out += ["", "## Metrics (`metrics/`)", "", *_metrics(options)]
    if options.include_visualizations:
        out += ["", "## Visualizations", "", *_visualizations(options)]
    out += ["", "## Warnings", ""]
    out += [f"- {w}" for w in warnings] if warnings else ["None."]
    out += ["", "## metadata.json", "",
            "`files` maps every other file of this archive to its `sha256` and `size` in bytes (check with "
            "`sha256sum`); `software` lists the versions that wrote the archive; `warnings` repeats the list "
            "above.", ""]
    return "\n".join(out)
