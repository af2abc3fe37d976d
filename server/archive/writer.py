"""``write_archive``: one export archive (zip) streamed to disk, image by image.

Layout (only the selected parts), in the order written::

    annotations/coco/annotations.json
    yolo/data.yaml, classes.txt, labels/<stem>.txt
    annotations/json/project.json
    images/<unique name>   (yolo/images/<unique name> when YOLO is chosen: ``images_folder``)
    visualizations/<stem>_overlay.png
    metrics/metrics.csv, metrics.json, metrics.xlsx
    README.md
    metadata.json          (last: SHA-256 and size of every other member)

Passes: geometry is computed once per pass (``shapes.image_shapes``) for groups of images of
up to 256 objects (``annotation_pass.shaped_steps``): the metrics come out of one pass, COCO
and YOLO of a second (``annotation_pass``). The metrics rows are handed to a child process
(``metrics_process.MetricsFilesProcess``) that writes the three metrics files while this one
makes the rest of the archive, so the metrics stage comes first and its files are added in
the finalizing stage. Why, and what it gained: ``server/DECISIONS.md`` and ``bench/README.md`` (P4).

Memory: members are written through ``ZipFile.open(name, "w")`` as they are produced, or
deflated as they are produced (the COCO and project JSON on a thread, ``ZipSink.text_member``;
the metrics files by the metrics process) and then copied in (``ZipSink.add_deflated``); the
JSON files are streamed one image at a time (the YOLO label texts wait in a temporary file
while the COCO member is open); image files are copied from ``ImageRecord.path`` in 256 KiB
chunks, never staged; one overlay image at a time; the metrics process writes its rows as
they come (the XLSX library's constant-memory mode).

Cancellation: ``checkpoint(stage, fraction, message)`` is called at least once per image in
every stage, between steps of 256 objects (25 when drawing an overlay), after every copied
256 KiB chunk, and, repeating its last arguments, inside every long step: before each further
64 KiB written into any member (an overlay PNG is written as Pillow encodes it), for every
block an overlay's decoder reads, between an overlay's decode, contrast stretch, drawing and
compositing, and every 20 ms while the metrics process finishes its files. So the gap between
two calls is a few milliseconds of work. Whatever it raises propagates out of
``write_archive`` unchanged (open members and the zip are closed on the way out, the metrics
process is killed and its files removed). The partial file at ``dest_path`` is left behind:
the CALLER deletes it (the job runner removes its ``.part`` file). Temporary files are always
removed.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image

from app.models import ExportOptions
from server.archive import native_json
from server.archive.annotation_pass import shaped_steps, write_coco_yolo
from server.archive.metrics import column_docs, image_metric_rows
from server.archive.metrics_process import MetricsFilesProcess
from server.archive.names import ArchiveName, assign_archive_names
from server.archive.overlay import render_overlay, write_overlay_png
from server.archive.readme import readme_text
from server.archive.yolo import YOLO_DIR
from server.archive.progress import Checkpoint, Progress
from server.archive.zip_sink import ZipSink
from server.domain import ImageRecord, ProjectRecord
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge

MAX_WARNINGS = 200
_PACKAGES = ("numpy", "pillow", "pycocotools", "shapely", "rustpy-xlsxwriter", "orjson", "pyyaml", "pydantic", "tifffile")

Names = dict[int, ArchiveName]


@dataclass
class ArchiveResult:
    """What ``write_archive`` wrote: ``path``, ``size_bytes`` of the zip, ``warnings`` (objects
    or files left out; at most ``MAX_WARNINGS`` plus a summary line), the counts, and ``files``:
    member name -> ``{"sha256", "size"}`` (uncompressed) for every member but metadata.json."""

    path: Path
    size_bytes: int
    warnings: list[str]
    image_count: int
    object_count: int
    files: dict[str, dict] = field(default_factory=dict)


def images_folder(options: ExportOptions) -> str:
    """Where the image files go: ``yolo/images`` when YOLO is chosen (Ultralytics reads the
    labels beside the images, and the files are stored once), else ``images``."""
    return f"{YOLO_DIR}/images" if "yolo" in options.annotation_formats else "images"


def carried_warnings(project: ProjectRecord, selected: Sequence[ImageRecord]) -> list[str]:
    """The warnings every export of ``selected`` starts with: what the project's import
    reported (``import: ...``), and the images without objects (an empty YOLO label file, no
    COCO annotation, no metrics row)."""
    out = [f"import: {w}" for w in project.import_warnings]
    empty = [im.file_name for im in selected if not im.objects]
    if empty:
        shown = ", ".join(repr(name) for name in empty[:20]) + (f" and {len(empty) - 20} more" if len(empty) > 20 else "")
        out.append(f"images without objects ({len(empty)}): {shown}")
    return out


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
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> ArchiveResult:
    """Write the export archive of ``images`` (of ``project``, filtered by ``options.image_ids``)
    to ``dest_path`` (created or overwritten) with the parts chosen in ``options``.

    ``checkpoint(stage, fraction, message)``: ``stage`` is ``metrics``, ``annotations``,
    ``images``, ``visualizations`` or ``finalizing``, in that order; ``fraction`` is the overall
    progress 0..1, never decreasing, 1.0 on the last call. It is also called again with its
    last arguments inside long steps (see the module docstring), so it must be cheap when
    nothing changed (the job runner's is: a flag test, and a database write at most every
    100 ms). Any exception it raises (the caller's cancellation) propagates unchanged; the
    partial ``dest_path`` is then the caller's to delete.
    ``tmpdir``: where the metrics temporaries go (default: the system's).
    ``max_image_pixels``: the pixel budget (``server.image_budget``); an overlay of an image
    over it is left out with a warning. Metrics use
    ``options.pixel_size_um`` (None = px units). Raises ``OSError`` on write errors (disk
    full...). A missing or unreadable image file is not an error: it is left out of
    ``images/`` and its overlay is drawn on black, with a warning.
    """
    started = _now()
    selected = select_images(images, options)
    names = assign_archive_names(selected)
    warnings = carried_warnings(project, selected)
    n = len(selected)
    ann, met = options.annotation_formats, options.metrics_formats
    total = len(ann) * n + (n + 1 if met else 0) + 1
    total += (n if options.include_images else 0) + (n if options.include_visualizations else 0)
    progress = Progress(checkpoint, total)
    counts = {"images": n, "objects": sum(len(im.objects) for im in selected)}
    dest = Path(dest_path)

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cellhub-metrics-", dir=tmpdir))) \
            if met else None
        zf = stack.enter_context(zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True))
        sink = ZipSink(zf, time.localtime()[:6], poll=progress.poll)
        metrics_files: Optional[MetricsFilesProcess] = None
        try:
            if met:
                # First, so the metrics process writes the files on another core while the
                # rest of the archive is made; they join in the finalizing stage.
                counts["metrics_rows"], metrics_files = _write_metrics(selected, names, options, warnings,
                                                                       progress, tmp)
            counts.update(write_coco_yolo(sink, project, selected, names, ann, warnings, progress, tmpdir))
            if "json" in ann:
                _write_native(sink, project, selected, names, progress, tmpdir)
            if options.include_images:
                counts["image_files"] = _write_images(sink, selected, names, warnings, progress, images_folder(options))
            if options.include_visualizations:
                counts["visualizations"] = _write_overlays(sink, selected, names, options, warnings, progress,
                                                           max_image_pixels)
            if metrics_files is not None:
                _add_metrics_files(sink, metrics_files, progress)
        except BaseException:
            if metrics_files is not None:
                metrics_files.discard()  # a cancel or an error: kill the process, nothing to wait for
            raise

        progress.report("finalizing", 0, "Writing README and metadata")
        final_warnings = _cap(warnings)
        sink.write_text("README.md", readme_text(project, options, selected, started, final_warnings,
                                                 images_folder(options)))
        files = dict(sink.files)
        meta = _metadata(project, options, counts, started, final_warnings, files)
        with sink.member("metadata.json") as raw:
            raw.write(json.dumps(meta, indent=2, ensure_ascii=False).encode("utf-8"))
    progress.advance(1)
    checkpoint("finalizing", 1.0, "Archive complete")
    return ArchiveResult(dest, dest.stat().st_size, final_warnings, n, counts["objects"], files)


def _metadata(project: ProjectRecord, options: ExportOptions, counts: dict, started: str,
              warnings: list[str], files: dict) -> dict:
    return {
        "schema": "cellhub.export-metadata",
        "schema_version": 1,
        "project": {"id": project.id, "name": project.name, "description": project.description,
                    "categories": list(project.categories), "pixel_size_um": project.pixel_size_um,
                    "synthetic": project.synthetic},
        "options": options.model_dump(mode="json"),
        "metrics_unit": "um" if options.pixel_size_um else "px",
        "images_folder": images_folder(options) if options.include_images else None,
        "counts": counts,
        "software": dict(_versions()),
        "started_at": started,
        "finished_at": _now(),
        "warnings": warnings,
        "files": files,
    }


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    # Cached: reading package metadata costs about 1 MB and the versions cannot change.
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


def _write_native(sink: ZipSink, project, selected, names: Names, progress: Progress,
                  tmpdir: Optional[str]) -> None:
    n = len(selected)

    def on_image(index: int, image: ImageRecord) -> None:
        progress.report("annotations", index, f"Project JSON: image {index + 1} of {n}")

    with sink.text_member("annotations/json/project.json", deflate_on_thread=True, tmpdir=tmpdir) as text:
        for chunk in native_json.iter_native_json(project, selected, names, on_image):
            text.write(chunk)
    progress.advance(n)


def _write_metrics(selected, names: Names, options: ExportOptions, warnings, progress: Progress,
                   tmp: Path) -> tuple[int, MetricsFilesProcess]:
    """The metrics stage: every row computed once and handed to the metrics process, which
    writes the files into ``tmp`` beside the rest of the archive and is returned still at
    work (``_add_metrics_files`` joins it). Returns (rows, the process)."""
    s = options.pixel_size_um
    n = len(selected)
    rows = 0
    meta = {"pixel_size_um": s, "length_unit": "um" if s else "px"}
    files = MetricsFilesProcess(tmp, options.metrics_formats, column_docs(s), meta, tmpdir=str(tmp), deflate=True)
    try:
        for index, step, done, _, table in shaped_steps(selected, with_metrics=True):
            image = selected[index]
            total = len(image.objects)
            progress.report("metrics", index + (done / total if done else 0), f"Metrics: image {index + 1} of {n}")
            chunk = image_metric_rows(step, names[image.id].file_name, s, warnings, table=table)
            rows += len(chunk)
            files.write_rows(chunk)
        files.end_rows()  # the child finishes the files while the annotations are written
    except BaseException:
        files.discard()
        raise
    progress.advance(n + 1)
    return rows, files


def _add_metrics_files(sink: ZipSink, files: MetricsFilesProcess, progress: Progress) -> None:
    """Wait for the metrics process (checking for a cancel every 20 ms), then add its files,
    which it has deflated too (so their zlib work is done on its core, not here)."""
    progress.report("finalizing", 0, "Metrics: finishing the metrics files")
    files.close(progress.poll)
    for fmt, member in files.deflated().items():
        message = f"Metrics: writing metrics.{fmt}"
        progress.report("finalizing", 0, message)
        sink.add_deflated(f"metrics/metrics.{fmt}", member, lambda _done, m=message: progress.report("finalizing", 0, m))


def _write_images(sink: ZipSink, selected, names: Names, warnings, progress: Progress, folder: str) -> int:
    n, copied = len(selected), 0
    for index, image in enumerate(selected):
        message = f"Images: {index + 1} of {n}"
        progress.report("images", 0, message)
        if not image.path or not os.path.isfile(image.path):
            warnings.append(f"images: file of image {image.file_name!r} (id {image.id}) is missing; not included")
            progress.advance(1)
            continue
        size = os.path.getsize(image.path)

        def on_chunk(done: int, size: int = size, message: str = message) -> None:
            progress.report("images", done / size if size else 1.0, message)

        with open(image.path, "rb") as src:
            sink.copy_file(f"{folder}/{names[image.id].file_name}", src, on_chunk, size)
        copied += 1
        progress.advance(1)
    return copied


def _write_overlays(sink: ZipSink, selected, names: Names, options: ExportOptions, warnings,
                    progress: Progress, max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> int:
    n, written = len(selected), 0
    for index, image in enumerate(selected):
        message = f"Visualizations: {index + 1} of {n}"
        progress.report("visualizations", 0, message)

        def on_objects(done: int, total: int, message: str = message) -> None:
            progress.report("visualizations", 0.8 * done / total, message)

        where = f"visualizations: image {image.file_name!r} (id {image.id})"
        source = image.path if image.path and os.path.isfile(image.path) else None
        if source is None:
            warnings.append(f"{where}: file is missing; outlines drawn on black")
        notes: list[str] = []
        try:
            try:
                picture = render_overlay(image, options.visualization, source, on_objects, progress.poll,
                                         notes=notes, max_pixels=max_image_pixels)
            except ImageTooLarge:
                raise
            except (OSError, ValueError, Image.DecompressionBombError) as exc:  # unreadable or unsupported file
                warnings.append(f"{where}: file could not be read ({exc}); outlines drawn on black")
                notes = []
                picture = render_overlay(image, options.visualization, None, on_objects, progress.poll,
                                         notes=notes, max_pixels=max_image_pixels)
        except ImageTooLarge as exc:  # stored before the budget was set this low: skipped, not failed
            warnings.append(f"{where}: {exc}; no overlay")
            progress.advance(1)
            continue
        warnings.extend(f"{where}: {note}" for note in notes)
        progress.report("visualizations", 0.8, message)
        with sink.member(f"visualizations/{names[image.id].stem}_overlay.png") as raw:
            write_overlay_png(picture, raw)
        del picture
        written += 1
        progress.advance(1)
    return written
