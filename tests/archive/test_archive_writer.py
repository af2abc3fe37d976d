import csv
import hashlib
import io
import json
import zipfile

import numpy as np
import openpyxl
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from app.models import ExportOptions
from archive_helpers import iou, rasterise
from server.archive import write_archive
from server.archive.native_json import load_native_json
from server.domain import ImageRecord, ProjectRecord

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

EVERYTHING = dict(annotation_formats=["coco", "yolo", "json"], metrics_formats=["csv", "xlsx", "json"],
                  include_images=True, include_visualizations=True)
STAGE_ORDER = ["metrics", "annotations", "images", "visualizations", "finalizing"]


class Recorder:
    def __init__(self, stop_at=None):
        self.calls = []
        self.stop_at = stop_at

    def __call__(self, stage, fraction, message):
        self.calls.append((stage, fraction, message))
        if self.stop_at and self.stop_at(stage, fraction, message, self.calls):
            raise Cancelled("cancelled by test")


class Cancelled(Exception):
    pass


def meta_warnings(folder):
    return json.loads((folder / "metadata.json").read_text())["warnings"]


def _export(tmp_path, project, **options):
    dest = tmp_path / "out.zip"
    rec = Recorder()
    result = write_archive(project, project.images, ExportOptions(**options), dest, rec)
    return dest, result, rec


def test_full_archive_layout_and_every_file_reads_with_its_tool(tmp_path, synthetic_project):
    dest, result, _ = _export(tmp_path, synthetic_project, pixel_size_um=0.5, **EVERYTHING)
    with zipfile.ZipFile(dest) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert set(names) == {
            "annotations/coco/annotations.json",
            "yolo/data.yaml", "yolo/classes.txt",
            *(f"yolo/labels/{s}.txt" for s in ("cells", "deep", "cells_2", "empty")),
            "annotations/json/project.json",
            "metrics/metrics.csv", "metrics/metrics.xlsx", "metrics/metrics.json",
            # With YOLO, the image files are stored once, beside the labels, as Ultralytics reads them.
            "yolo/images/cells.png", "yolo/images/deep.tif", "yolo/images/cells_2.png", "yolo/images/empty.png",
            *(f"visualizations/{s}_overlay.png" for s in ("cells", "deep", "cells_2", "empty")),
            "README.md", "metadata.json",
        }
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        # Unpacked, every file is a regular file anyone on the machine may read (rw-r--r--).
        assert {oct(i.external_attr >> 16) for i in zf.infolist()} == {oct(0o100644)}
        zf.extractall(tmp_path / "x")
    x = tmp_path / "x"

    coco = COCO(str(x / "annotations/coco/annotations.json"))
    assert len(coco.getAnnIds()) == 12
    images = {im.id: im for im in synthetic_project.images}
    for ann in coco.loadAnns(coco.getAnnIds()):
        im = images[ann["image_id"]]
        obj = next(o for o in im.objects if o.id == ann["object_id"])
        assert iou(coco.annToMask(ann).astype(bool), rasterise(obj.polygons, im.height, im.width)) >= 0.99
    assert {i["file_name"] for i in coco.dataset["images"]} == {"cells.png", "deep.tif", "cells_2.png", "empty.png"}

    assert yaml.safe_load((x / "yolo/data.yaml").read_text())["names"] == {0: "cell", 1: "nucleus"}
    assert (x / "yolo/labels/empty.txt").read_text() == ""
    assert len((x / "yolo/labels/cells.txt").read_text().splitlines()) == 7

    loaded = load_native_json(json.loads((x / "annotations/json/project.json").read_text()))
    assert [len(im.objects) for im in loaded.images] == [8, 3, 2, 0]

    rows = list(csv.DictReader(open(x / "metrics/metrics.csv", newline="", encoding="utf-8")))
    assert len(rows) == 12 and "area_um2" in rows[0]
    assert {r["image_file"] for r in rows} == {"cells.png", "deep.tif", "cells_2.png"}
    sheet = list(openpyxl.load_workbook(x / "metrics/metrics.xlsx", read_only=True)["metrics"].iter_rows(values_only=True))
    assert len(sheet) == 13 and sheet[0][5] == "area_um2"
    assert [r[2] for r in sheet[1:]] == [int(r["object_id"]) for r in rows]
    metrics_json = json.loads((x / "metrics/metrics.json").read_text())
    assert len(metrics_json["rows"]) == 12 and metrics_json["pixel_size_um"] == 0.5

    for image in synthetic_project.images:
        name = {10: "cells.png", 11: "deep.tif", 12: "cells_2.png", 13: "empty.png"}[image.id]
        assert (x / "yolo/images" / name).read_bytes() == open(image.path, "rb").read()
        with Image.open(x / "visualizations" / (name.rsplit(".", 1)[0] + "_overlay.png")) as ov:
            assert ov.format == "PNG" and ov.size == (64, 48) and ov.mode == "RGB"

    readme = (x / "README.md").read_text()
    for heading in ("## Layout", "## COCO", "## YOLO", "## Project JSON", "## Metrics", "## Visualizations",
                    "## Warnings"):
        assert heading in readme
    assert "- images without objects (1): 'empty.png'" in readme
    assert meta_warnings(x) == result.warnings and "images without objects (1): 'empty.png'" in result.warnings
    assert "feret_max_um" in readme and "iscrowd" in readme

    meta = json.loads((x / "metadata.json").read_text())
    assert set(meta["files"]) == set(names) - {"metadata.json"}
    for name, entry in meta["files"].items():
        data = (x / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert meta["options"]["pixel_size_um"] == 0.5 and meta["counts"]["images"] == 4
    assert meta["counts"]["objects"] == 13 and meta["counts"]["coco_annotations"] == 12
    assert meta["software"]["pycocotools"] and meta["started_at"] <= meta["finished_at"]
    assert str(tmp_path) not in (x / "metadata.json").read_text()
    assert result.files == meta["files"] and result.size_bytes == dest.stat().st_size
    assert result.image_count == 4 and result.object_count == 13


def test_only_the_selected_formats_are_written(tmp_path, synthetic_project):
    dest, _, rec = _export(tmp_path, synthetic_project, annotation_formats=["yolo"], metrics_formats=["xlsx"])
    with zipfile.ZipFile(dest) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
    assert not any(n.startswith(("annotations/", "images/", "yolo/images/", "visualizations/")) for n in names)
    assert {"metrics/metrics.xlsx", "yolo/data.yaml", "README.md", "metadata.json"} <= names
    assert "put them in `yolo/images/`" in readme  # no images in the archive: where they go
    assert not {"metrics/metrics.csv", "metrics/metrics.json"} & names
    assert "## COCO" not in readme and "## YOLO" in readme
    assert {stage for stage, _, _ in rec.calls} == {"annotations", "metrics", "finalizing"}


def test_warnings_are_returned_and_recorded(tmp_path, synthetic_project):
    synthetic_project.images[1].path = str(tmp_path / "gone.tif")
    dest, result, _ = _export(tmp_path, synthetic_project, **EVERYTHING)
    assert "COCO: image 'cells.png' object 8 skipped: no area" in result.warnings
    assert any("YOLO" in w and "object 8" in w for w in result.warnings)
    assert any(w.startswith("images:") and "'deep.tif'" in w for w in result.warnings)
    with zipfile.ZipFile(dest) as zf:
        assert "images/deep.tif" not in zf.namelist()
        assert "visualizations/deep_overlay.png" in zf.namelist()  # drawn on black
        assert json.loads(zf.read("metadata.json"))["warnings"] == result.warnings


def test_import_warnings_travel_into_the_export(tmp_path, synthetic_project):
    synthetic_project.import_warnings = ["empty.png: no objects (the mask is all background)",
                                         "cells.png: object 3 traced with IoU 0.981 (< 0.99)"]
    dest, result, _ = _export(tmp_path, synthetic_project, image_ids=[10, 13])
    assert result.warnings[:3] == ["import: empty.png: no objects (the mask is all background)",
                                   "import: cells.png: object 3 traced with IoU 0.981 (< 0.99)",
                                   "images without objects (1): 'empty.png'"]
    with zipfile.ZipFile(dest) as zf:
        readme = zf.read("README.md").decode()
        assert json.loads(zf.read("metadata.json"))["warnings"] == result.warnings
    warnings_section = readme.split("## Warnings", 1)[1].split("\n## ", 1)[0]
    assert [line[2:] for line in warnings_section.strip().splitlines()] == result.warnings


def test_progress_reaches_every_image_in_every_stage_and_never_goes_back(tmp_path, synthetic_project):
    _, _, rec = _export(tmp_path, synthetic_project, **EVERYTHING)
    stages = [s for s, _, _ in rec.calls]
    assert sorted(set(stages), key=STAGE_ORDER.index) == STAGE_ORDER
    assert stages == sorted(stages, key=STAGE_ORDER.index), "stages run in order"
    fractions = [f for _, f, _ in rec.calls]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] == 1.0
    for stage in ("metrics", "images", "visualizations"):
        messages = {m for s, _, m in rec.calls if s == stage}
        assert all(any(f"{k} of 4" in m for m in messages) for k in range(1, 5)), stage
    coco_msgs = {m for s, _, m in rec.calls if s == "annotations" and m.startswith("COCO")}
    assert all(f"COCO: image {k} of 4" in coco_msgs for k in range(1, 5))


def test_image_ids_select_images(tmp_path, synthetic_project):
    dest, result, _ = _export(tmp_path, synthetic_project, image_ids=[12, 10], include_images=True)
    with zipfile.ZipFile(dest) as zf:
        coco = json.loads(zf.read("annotations/coco/annotations.json"))
        assert sorted(n for n in zf.namelist() if n.startswith("images/")) == ["images/cells.png", "images/cells_2.png"]
    assert [i["id"] for i in coco["images"]] == [10, 12]
    assert result.image_count == 2


@pytest.mark.parametrize("stage", ["annotations", "metrics", "images", "visualizations", "finalizing"])
def test_cancellation_propagates_from_every_stage(tmp_path, synthetic_project, stage):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    rec = Recorder(stop_at=lambda s, f, m, calls: s == stage)
    dest = tmp_path / "partial.zip"
    with pytest.raises(Cancelled, match="cancelled by test"):
        write_archive(synthetic_project, synthetic_project.images, ExportOptions(**EVERYTHING), dest, rec, tmpdir=str(tmp))
    assert rec.calls[-1][0] == stage
    assert list(tmp.iterdir()) == []  # metrics temporaries are gone
    assert dest.exists()  # the partial file is the caller's to delete


def test_cancellation_inside_a_large_image_copy(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(np.random.default_rng(3).bytes(3 * (1 << 20) + 5))
    project = ProjectRecord(1, "p", ["c"], images=[ImageRecord(1, "big.png", 10, 10, str(big))])
    seen = []

    def stop(stage, fraction, message, calls):
        if stage == "images":
            seen.append(fraction)
        return len(seen) == 3  # the third report for this one image: after its second chunk

    with pytest.raises(Cancelled):
        write_archive(project, project.images, ExportOptions(include_images=True), tmp_path / "o.zip", Recorder(stop))
    assert seen[0] < seen[1] < seen[2] < 1.0


def test_empty_image_list_still_gives_a_valid_archive(tmp_path):
    project = ProjectRecord(1, "p", ["c"])
    dest, result, _ = _export(tmp_path, project, **{**EVERYTHING, "include_images": False})
    with zipfile.ZipFile(dest) as zf:
        coco = json.loads(zf.read("annotations/coco/annotations.json"))
        rows = list(csv.reader(io.StringIO(zf.read("metrics/metrics.csv").decode())))
    assert coco["images"] == [] and coco["annotations"] == []
    assert len(rows) == 1
    assert result.warnings == []


def test_real_data_archive(tmp_path, real_project):
    dest, result, rec = _export(tmp_path, real_project, annotation_formats=["coco", "yolo"],
                                metrics_formats=["csv"], include_images=True)
    with zipfile.ZipFile(dest) as zf:
        coco = json.loads(zf.read("annotations/coco/annotations.json"))
        rows = list(csv.DictReader(io.StringIO(zf.read("metrics/metrics.csv").decode())))
        meta = json.loads(zf.read("metadata.json"))
        image_names = [n for n in zf.namelist() if n.startswith("yolo/images/")]
        for image, entry in zip(real_project.images, coco["images"]):
            assert zf.read(f"yolo/images/{entry['file_name']}") == open(image.path, "rb").read()
    assert len(coco["annotations"]) == len(rows) == 1122
    assert len(image_names) == 17 and "yolo/images/img2d_2.tif" in image_names
    assert result.warnings == ["images without objects (1): 'IXMtest_F13_s7_w13C1B1D8C-293E-454F-B0FD-6C2C3F9F5173.tif'"]
    assert meta["counts"]["yolo_lines"] == 1122 and meta["images_folder"] == "yolo/images"
    assert "area_px2" in rows[0]


def _many_circles(n_images: int) -> ProjectRecord:
    """``n_images`` images of 20 circles each. Their file names are interned here, before any
    tracing: naming the archive's images (``names.safe_name``, through ``pathlib``) interns
    each name, and a new one can make the interpreter's table of interned strings grow, one
    allocation of 2-4 MB at a moment set by everything imported before, not by the export."""
    import math
    import sys

    ring = [(12 + 8 * math.cos(k * math.pi / 12), 12 + 8 * math.sin(k * math.pi / 12)) for k in range(24)]
    from server.domain import SegObject

    images = [ImageRecord(i, sys.intern(f"im{i}.png"), 400, 100, None,
                          [SegObject(j, "c", [[[(x + 20 * j, y) for x, y in ring]]]) for j in range(20)])
              for i in range(1, n_images + 1)]
    return ProjectRecord(1, "p", ["c"], images=images)


@pytest.mark.parametrize("fmt, member", [("coco", "annotations/coco/annotations.json"),
                                         ("json", "annotations/json/project.json")])
def test_json_members_are_streamed_not_built_whole(tmp_path, fmt, member):
    """Peak Python memory must not grow with the size of the JSON written (tracemalloc)."""
    import tracemalloc

    peaks, sizes = [], []
    warm = _many_circles(1)  # first use caches package versions (about 1 MB of metadata reading)
    write_archive(warm, warm.images, ExportOptions(annotation_formats=[fmt]), tmp_path / "w.zip", lambda *a: None)
    # Geometry is computed for groups of up to OBJECTS_PER_STEP objects (12 images of 20 here),
    # and the member is deflated on a thread, with up to about 1 MiB of its text on the way:
    # from 144 images (over 1 MB of text) on, the peak holds the same, and differs only by
    # what would grow with the file.
    for n in (144, 720):
        project = _many_circles(n)
        tracemalloc.start()
        try:
            result = write_archive(project, project.images, ExportOptions(annotation_formats=[fmt]),
                                   tmp_path / f"{n}.zip", lambda *a: None)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        sizes.append(result.files[member]["size"])
    # Building the document first would need at least its text (and several times that as dicts).
    assert peaks[1] - peaks[0] < 0.2 * (sizes[1] - sizes[0]), (peaks, sizes)


def test_the_metrics_process_hears_the_last_row_before_the_annotations_start(tmp_path, synthetic_project, monkeypatch):
    # So it finishes its files on another core while the annotations are written, and the
    # finalizing stage does not wait for it.
    from server.archive.metrics_process import MetricsFilesProcess

    events = []
    real_end = MetricsFilesProcess.end_rows
    monkeypatch.setattr(MetricsFilesProcess, "end_rows", lambda self: (events.append("end_rows"), real_end(self))[1])

    def checkpoint(stage, fraction, message):
        if not events or events[-1] != stage:
            events.append(stage)

    write_archive(synthetic_project, synthetic_project.images,
                  ExportOptions(annotation_formats=["coco"], metrics_formats=["csv"]), tmp_path / "a.zip", checkpoint)
    assert events.index("end_rows") < events.index("annotations")
