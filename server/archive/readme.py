"""The archive's README.md: layout, and each format's and metric's definition and source."""
from __future__ import annotations

from app.models import ExportOptions
from server.archive.metrics import METRICS, unit_suffix
from server.domain import ProjectRecord

YOLO_DIR = "annotations/yolo"

_COCO = [
    "Source: the COCO data format (cocodataset.org/#format-data), read with pycocotools.",
    "- `images`: `id` (project image id), `file_name` (name under `images/`), `width`, `height`.",
    "- `categories`: `id` 1.. in project order, `name`.",
    "- `annotations`: one per object. `segmentation` is a list of polygons `[x1, y1, x2, y2, ...]`, one "
    "per part. COCO polygons cannot have holes, so an object with a hole is written as a compressed RLE "
    "mask (`{size: [height, width], counts}`, pycocotools `mask.encode`) of its parts minus its holes. "
    "`iscrowd` is 0 for every object, RLE ones included: each is a single object, not a crowd region "
    "(COCOeval ignores crowd regions when matching). `area` is the exact polygon area in px^2 with holes "
    "subtracted; `bbox` is `[x, y, width, height]` of the polygon bounds; `object_id` is the project's "
    "object id. Objects without area are left out and listed in metadata.json `warnings`.",
    "- Read it with `pycocotools.coco.COCO(path)`; `annToMask(ann)` gives each object's mask.",
]

_YOLO = [
    "Source: Ultralytics segmentation dataset format (docs.ultralytics.com/datasets/segment).",
    "- `labels/<stem>.txt`: one line per object, `class x1 y1 x2 y2 ...`; class 0-based (line k of "
    "`classes.txt`, `names` in `data.yaml`); coordinates divided by the image width and height (0..1, "
    "6 decimals), clipped to the image. An image without objects has an empty file.",
    "- A YOLO polygon has no holes, and one line is one object: the parts and holes of an object are "
    "joined into one ring by zero-width bridges between their closest vertices (as Ultralytics' own COCO "
    "converter does for multi-part objects). Filling that ring gives the parts with the holes left out.",
    "- Ultralytics finds a label by replacing `/images/` with `/labels/` in the image path. To train, "
    f"unpack the archive, move `{YOLO_DIR}/labels` to `labels` beside `images/`, and use "
    f"`{YOLO_DIR}/data.yaml` (its `train` and `val` are `../../images`; there is no train/val split).",
]

_NATIVE = [
    "The project's own format, `schema: cellhub.project`, `schema_version: 1`: the project (id, name, "
    "description, categories, pixel_size_um, synthetic) and every image with its objects; `polygons` are "
    "exactly as stored (full precision, holes and parts kept), so the file imports back without loss.",
]


def _layout(options: ExportOptions) -> list[str]:
    ann, out = options.annotation_formats, []
    if "coco" in ann:
        out.append("- `annotations/coco/annotations.json`: COCO instance segmentation")
    if "yolo" in ann:
        out.append(f"- `{YOLO_DIR}/data.yaml`, `classes.txt`, `labels/<stem>.txt`: YOLO segmentation")
    if "json" in ann:
        out.append("- `annotations/json/project.json`: the project's own lossless JSON")
    out += [f"- `metrics/metrics.{fmt}`: shape metrics, one row per object" for fmt in options.metrics_formats]
    if options.include_images:
        out.append("- `images/<name>`: the original image files, byte for byte")
    if options.include_visualizations:
        out.append("- `visualizations/<stem>_overlay.png`: each image with its outlines drawn on it")
    out += [
        "- `metadata.json`: project, export options, counts, software versions, times, warnings, and "
        "the SHA-256 and size of every other file in this archive",
        "- `README.md`: this file",
        "",
        "Every format names an image the same way: its name under `images/`, unique in the archive (a "
        "repeated name gets `_2`, `_3`, ... before the extension, in project order). `<stem>` is that "
        "name without its extension.",
    ]
    return out


def _metrics(options: ExportOptions) -> list[str]:
    s = options.pixel_size_um
    scale = (f"Pixel size {s} um/px: lengths are multiplied by it, areas by its square."
             if s else "No pixel size was given: lengths are in px, areas in px^2.")
    out = [
        "One row per object, computed from the polygons (not from a rasterised mask). "
        f"{scale} The unit is part of each column name. Holes are subtracted from the area and "
        "their outlines count in the perimeter; the parts of an object are measured together. "
        "Objects without area are left out (see metadata.json `warnings`). Lengths are those of the "
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
    ]
    out += [f"| `{m.key}{unit_suffix(m.kind, s)}` | {m.definition} | {m.source} |" for m in METRICS]
    return out


def readme_text(project: ProjectRecord, options: ExportOptions, image_count: int, object_count: int,
                created_at: str) -> str:
    """README.md of an archive made with ``options`` (only the selected parts are described);
    ``created_at`` is an ISO-8601 UTC time."""
    out = [f"# Export of project \"{project.name}\"", "",
           f"Created {created_at}: {image_count} images, {object_count} objects."]
    if project.synthetic:
        out += ["", "**This project is synthetic demo data made by the program, not a microscopy experiment.**"]
    out += ["", "## Layout", "", *_layout(options), "", "## Coordinates", "",
            "Pixels, continuous, origin at the top-left corner of the image: pixel (column c, row r) covers "
            "[c, c+1) x [r, r+1), so its centre is (c + 0.5, r + 0.5) (the COCO convention). A polygon is an "
            "exterior ring plus optional hole rings; an object may have several polygons."]
    if "coco" in options.annotation_formats:
        out += ["", "## COCO (`annotations/coco/annotations.json`)", "", *_COCO]
    if "yolo" in options.annotation_formats:
        out += ["", f"## YOLO segmentation (`{YOLO_DIR}/`)", "", *_YOLO]
    if "json" in options.annotation_formats:
        out += ["", "## Project JSON (`annotations/json/project.json`)", "", *_NATIVE]
    if options.metrics_formats:
        out += ["", "## Metrics (`metrics/`)", "", *_metrics(options)]
    if options.include_visualizations:
        v = options.visualization
        numbers = f"object ids written in {v.font_size} px" if v.show_numbers else "no object ids"
        out += ["", "## Visualizations", "",
                f"PNG, same size as the image. Outlines {v.outline_color}, holes {v.hole_color}, "
                f"{v.stroke_width} px, opacity {v.opacity}; {numbers}. 16-bit and dim 8-bit images are "
                "contrast-stretched (0.5th to 99.9th percentile) for display only; the files in `images/` are "
                "the originals."]
    out += ["", "## metadata.json", "",
            "`files` maps every other file of this archive to its `sha256` and `size` in bytes (check with "
            "`sha256sum`); `software` lists the versions that wrote the archive.", ""]
    return "\n".join(out)
