"""``write_archive``: one export archive (zip) streamed to disk, image by image.

Layout (only the selected parts)::

    annotations/coco/annotations.json
    annotations/yolo/data.yaml, classes.txt, labels/<stem>.txt
    annotations/json/project.json
    metrics/metrics.csv, metrics.xlsx, metrics.json
    images/<unique name>
    visualizations/<stem>_overlay.png
    README.md
    metadata.json          (last: SHA-256 and size of every other member)

Memory: members are written through ``ZipFile.open(name, "w")`` as they are produced; JSON is
streamed one image at a time; image files are copied from ``ImageRecord.path`` in 1 MiB chunks;
one overlay image at a time. The three metrics files are filled in one pass over the objects
(each row computed once) into temporary files, then copied into the zip (a zip accepts one
open member at a time); XlsxWriter itself runs in ``constant_memory`` mode.

Cancellation: ``checkpoint(stage, fraction, message)`` is called at least once per image in
every stage, every 25 objects, and after every copied 1 MiB chunk. Whatever it raises propagates
out of ``write_archive`` unchanged (open members and the zip are closed on the way out). The
partial file at ``dest_path`` is left behind: the CALLER deletes it (the job runner removes
``<job>.zip.part``). Temporary files are always removed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from PIL import Image

from app.models import ExportOptions
from server.archive import coco, native_json, yolo
from server.archive.metrics import column_docs, image_rows
from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter
from server.archive.names import assign_archive_names
from server.archive.overlay import render_overlay, write_overlay_png
from server.archive.readme import YOLO_DIR, readme_text
from server.domain import ImageRecord, ProjectRecord

Checkpoint = Callable[[str, float, str], None]
CHUNK = 1 << 20
MAX_WARNINGS = 200
_PACKAGES = ("numpy", "pillow", "pycocotools", "shapely", "xlsxwriter", "pyyaml", "pydantic")


@dataclass
class ArchiveResult:
    """What ``write_archive`` wrote: ``path``, ``size_bytes`` of the zip, ``warnings`` (objects
    or files left out, at most ``MAX_WARNINGS`` plus a summary line), the counts, and ``files``:
    member name -> ``{"sha256", "size"}`` (uncompressed) for every member but metadata.json."""

    path: Path
    size_bytes: int
    warnings: list[str]
    image_count: int
    object_count: int
    files: dict[str, dict] = field(default_factory=dict)


class _HashingWriter(io.RawIOBase):
    # Forwards bytes to a zip member while hashing them; closing it leaves the member open.
    def __init__(self, inner) -> None:
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.inner.write(view)
        self.size += len(view)
        return len(view)


class _Progress:
    # Maps work units done to the overall fraction 0..1 passed to the caller's checkpoint.
    def __init__(self, checkpoint: Checkpoint, total: float) -> None:
        self.checkpoint = checkpoint
        self.total = max(total, 1.0)
        self.done = 0.0

    def report(self, stage: str, within: float, message: str) -> None:
        self.checkpoint(stage, min(1.0, (self.done + within) / self.total), message)

    def advance(self, units: float) -> None:
        self.done += units


class _Archive:
    def __init__(self, zf: zipfile.ZipFile, date_time: tuple) -> None:
        self.zf = zf
        self.date_time = date_time
        self.files: dict[str, dict] = {}

    @contextmanager
    def member(self, name: str, size_hint: int = 0) -> Iterator[_HashingWriter]:
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = size_hint  # lets zipfile choose ZIP64 up front for huge members
        with self.zf.open(info, "w", force_zip64=size_hint > (1 << 30)) as raw:
            writer = _HashingWriter(raw)
            yield writer
        self.files[name] = {"sha256": writer.sha.hexdigest(), "size": writer.size}

    @contextmanager
    def text_member(self, name: str) -> Iterator[io.TextIOWrapper]:
        with self.member(name) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="", write_through=False)
            yield text
            text.flush()
            text.detach()

    def write_text(self, name: str, text: str) -> None:
        with self.member(name) as raw:
            raw.write(text.encode("utf-8"))

    def copy_file(self, name: str, source, on_chunk: Callable[[int], None], size_hint: int = 0) -> None:
        with self.member(name, size_hint) as raw:
            copied = 0
            while chunk := source.read(CHUNK):
                raw.write(chunk)
                copied += len(chunk)
                on_chunk(copied)


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cap(warnings: list[str]) -> list[str]:
    unique = list(dict.fromkeys(warnings))
    if len(unique) <= MAX_WARNINGS:
        return unique
    return unique[:MAX_WARNINGS] + [f"... and {len(unique) - MAX_WARNINGS} more warnings"]


def select_images(images: Sequence[ImageRecord], options: ExportOptions) -> list[ImageRecord]:
    """``images`` restricted to ``options.image_ids`` (all when None), in the given order."""
    if options.image_ids is None:
        return list(images)
    wanted = set(options.image_ids)
    return [im for im in images if im.id in wanted]


def write_archive(
    project: ProjectRecord,
    images: Sequence[ImageRecord],
    options: ExportOptions,
    dest_path: str | os.PathLike,
    checkpoint: Checkpoint,
    tmpdir: Optional[str] = None,
) -> ArchiveResult:
    """Write the export archive of ``images`` (of ``project``, filtered by ``options.image_ids``)
    to ``dest_path`` (created or overwritten) with the parts chosen in ``options``.

    ``checkpoint(stage, fraction, message)``: ``stage`` in ``annotations``, ``metrics``,
    ``images``, ``visualizations``, ``finalizing``; ``fraction`` the overall progress 0..1, never
    decreasing. Any exception it raises (the caller's cancellation) propagates unchanged and the
    partial ``dest_path`` is the caller's to delete. ``tmpdir`` is where the metrics temporaries
    go (default: the system's). Metrics use ``options.pixel_size_um`` (None = px units).
    Raises ``OSError`` on write errors (disk full...). A missing or unreadable image file is
    not an error: it is skipped (overlay drawn on black) with a warning.
    """
    started = _now()
    selected = select_images(images, options)
    names = assign_archive_names(selected)
    warnings: list[str] = []
    n = len(selected)
    ann, met = options.annotation_formats, options.metrics_formats
    total = len(ann) * n + (n + 1 if met else 0) + (n if options.include_images else 0)
    total += (n if options.include_visualizations else 0) + 1
    progress = _Progress(checkpoint, total)
    counts = {"images": n, "objects": sum(len(im.objects) for im in selected)}
    dest = Path(dest_path)
    date_time = time.localtime()[:6]

    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6, allowZip64=True) as zf:
        archive = _Archive(zf, date_time)
        if "coco" in ann:
            counts["coco_annotations"] = _write_coco(archive, project, selected, names, warnings, progress)
        if "yolo" in ann:
            counts["yolo_lines"] = _write_yolo(archive, project, selected, names, warnings, progress)
        if "json" in ann:
            _write_native(archive, project, selected, names, progress)
        if met:
            counts["metrics_rows"] = _write_metrics(archive, selected, names, options, warnings, progress, tmpdir)
        if options.include_images:
            counts["image_files"] = _write_images(archive, selected, names, warnings, progress)
        if options.include_visualizations:
            counts["visualizations"] = _write_overlays(archive, selected, names, options, warnings, progress)

        progress.report("finalizing", 0, "Writing README and metadata")
        archive.write_text("README.md", readme_text(project, options, n, counts["objects"], started, options.pixel_size_um))
        final_warnings = _cap(warnings)
        meta = {
            "schema": "cellhub.export-metadata",
            "schema_version": 1,
            "project": {"id": project.id, "name": project.name, "description": project.description,
                        "categories": list(project.categories), "pixel_size_um": project.pixel_size_um,
                        "synthetic": project.synthetic},
            "options": options.model_dump(mode="json"),
            "metrics_pixel_size_um": options.pixel_size_um,
            "counts": counts,
            "software": _versions(),
            "started_at": started,
            "finished_at": _now(),
            "warnings": final_warnings,
            "files": dict(archive.files),
        }
        files = dict(archive.files)
        with archive.member("metadata.json") as raw:
            raw.write(json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8"))
    progress.advance(1)
    checkpoint("finalizing", 1.0, "Archive complete")
    return ArchiveResult(dest, dest.stat().st_size, final_warnings, n, counts["objects"], files)


def _write_coco(archive, project, selected, names, warnings, progress) -> int:
    n = len(selected)

    def on_image(index: int, image: ImageRecord, done: int, total: int) -> None:
        within = index + (done / total if total else 0)
        progress.report("annotations", within, f"COCO: image {index + 1} of {n}")

    stats: dict[str, int] = {}
    with archive.text_member("annotations/coco/annotations.json") as text:
        for chunk in coco.iter_coco_json(project, selected, names, warnings, on_image, stats):
            text.write(chunk)
    progress.advance(n)
    return stats["annotations"]


def _write_yolo(archive, project, selected, names, warnings, progress) -> int:
    ids = coco.category_ids(project, selected)
    class_index = {name: i - 1 for name, i in ids.items()}
    class_names = list(ids)
    archive.write_text(f"{YOLO_DIR}/data.yaml", yolo.data_yaml(class_names, "../../images"))
    archive.write_text(f"{YOLO_DIR}/classes.txt", yolo.classes_txt(class_names))
    lines = 0
    for index, image in enumerate(selected):
        progress.report("annotations", index, f"YOLO: image {index + 1} of {len(selected)}")
        text = yolo.label_text(image, class_index, warnings)
        lines += text.count("\n")
        archive.write_text(f"{YOLO_DIR}/labels/{names[image.id].stem}.txt", text)
    progress.advance(len(selected))
    return lines


def _write_native(archive, project, selected, names, progress) -> None:
    n = len(selected)

    def on_image(index: int, image: ImageRecord) -> None:
        progress.report("annotations", index, f"Project JSON: image {index + 1} of {n}")

    with archive.text_member("annotations/json/project.json") as text:
        for chunk in native_json.iter_native_json(project, selected, names, on_image):
            text.write(chunk)
    progress.advance(n)


def _write_metrics(archive, selected, names, options, warnings, progress, tmpdir) -> int:
    s = options.pixel_size_um
    columns = column_docs(s)
    formats = options.metrics_formats
    n = len(selected)
    rows = 0
    with tempfile.TemporaryDirectory(prefix="cellhub-metrics-", dir=tmpdir) as tmp:
        tmp_path = Path(tmp)
        with open(tmp_path / "metrics.csv", "w", encoding="utf-8", newline="") as csv_fp, \
                open(tmp_path / "metrics.json", "w", encoding="utf-8") as json_fp:
            writers = []
            if "csv" in formats:
                writers.append(CsvMetricsWriter(csv_fp, columns))
            if "json" in formats:
                writers.append(JsonMetricsWriter(json_fp, columns, {
                    "pixel_size_um": s, "length_unit": "um" if s else "px"}))
            if "xlsx" in formats:
                writers.append(XlsxMetricsWriter(str(tmp_path / "metrics.xlsx"), columns, tmpdir=tmp))
            try:
                for index, image in enumerate(selected):
                    def on_objects(done: int, total: int, _i=index) -> None:
                        progress.report("metrics", _i + done / total, f"Metrics: image {_i + 1} of {n}")

                    on_objects(0, 1)
                    for row in image_rows(image, names[image.id].file_name, s, warnings, on_objects):
                        rows += 1
                        for writer in writers:
                            writer.write(row)
            finally:
                # Finishes the workbook even when cancelled, so XlsxWriter leaves no temp files.
                for writer in writers:
                    writer.close()
        progress.advance(n)
        for fmt in ("csv", "xlsx", "json"):
            if fmt in formats:
                progress.report("metrics", 0, f"Metrics: writing metrics.{fmt}")
                path = tmp_path / f"metrics.{fmt}"
                with open(path, "rb") as src:
                    archive.copy_file(f"metrics/metrics.{fmt}", src,
                                      lambda _c, f=fmt: progress.report("metrics", 0, f"Metrics: writing metrics.{f}"),
                                      path.stat().st_size)
        progress.advance(1)
    return rows


def _write_images(archive, selected, names, warnings, progress) -> int:
    n, copied = len(selected), 0
    for index, image in enumerate(selected):
        name = names[image.id].file_name
        progress.report("images", 0, f"Images: {index + 1} of {n}")
        if not image.path or not os.path.isfile(image.path):
            warnings.append(f"images: file of image {image.file_name!r} (id {image.id}) is missing; not included")
            progress.advance(1)
            continue
        size = os.path.getsize(image.path)

        def on_chunk(done: int, _i=index, _size=size) -> None:
            progress.report("images", done / _size if _size else 1.0, f"Images: {_i + 1} of {n}")

        with open(image.path, "rb") as src:
            archive.copy_file(f"images/{name}", src, on_chunk, size)
        copied += 1
        progress.advance(1)
    return copied


def _write_overlays(archive, selected, names, options, warnings, progress) -> int:
    n, written = len(selected), 0
    for index, image in enumerate(selected):
        progress.report("visualizations", 0, f"Visualizations: {index + 1} of {n}")

        def on_objects(done: int, total: int, _i=index) -> None:
            progress.report("visualizations", 0.8 * done / total, f"Visualizations: {_i + 1} of {n}")

        source = image.path if image.path and os.path.isfile(image.path) else None
        if source is None:
            warnings.append(f"visualizations: file of image {image.file_name!r} (id {image.id}) is missing; outlines drawn on black")
        try:
            picture = render_overlay(image, options.visualization, source, on_objects)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # unreadable or unsupported file
            warnings.append(f"visualizations: image {image.file_name!r} (id {image.id}) could not be read ({exc}); outlines drawn on black")
            picture = render_overlay(image, options.visualization, None, on_objects)
        progress.report("visualizations", 0.8, f"Visualizations: {index + 1} of {n}")
        buffer = io.BytesIO()
        write_overlay_png(picture, buffer)
        del picture
        buffer.seek(0)
        archive.copy_file(f"visualizations/{names[image.id].stem}_overlay.png", buffer, lambda _c: None)
        written += 1
        progress.advance(1)
    return written

