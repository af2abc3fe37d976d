"""The annotations stage of ``write_archive``: COCO and YOLO from one pass over the images.

Both formats start from the same per-image geometry (``shapes.image_shapes``), so it is made
once per image and both are written from it. The COCO file is one member, streamed into the
zip as the pass goes; the YOLO label texts (a member per image) wait in a temporary file and
become members once the COCO member is closed (a zip takes one open member at a time).

Objects are taken ``OBJECTS_PER_STEP`` at a time with a checkpoint in between, so an image
with thousands of objects still sees a cancel within milliseconds; progress is also reported
every 25 objects while the COCO annotations are written, as before.
"""
from __future__ import annotations

import dataclasses
import tempfile
from contextlib import nullcontext
from typing import Iterator, NamedTuple, Optional, Sequence

import numpy as np

from server.archive import coco, yolo
from server.archive.names import ArchiveName
from server.archive.metrics import metrics_table
from server.archive.shapes import ImageShapes, image_shapes
from server.archive.yolo import YOLO_DIR
from server.archive.progress import Progress
from server.archive.zip_sink import ZipSink
from server.domain import ImageRecord, ProjectRecord

OBJECTS_PER_STEP = 256


def object_steps(image: ImageRecord) -> Iterator[ImageRecord]:
    """``image`` itself, or copies of it holding ``OBJECTS_PER_STEP`` of its objects each, in
    order (the same image otherwise)."""
    objects = image.objects
    if len(objects) <= OBJECTS_PER_STEP:
        yield image
        return
    for start in range(0, len(objects), OBJECTS_PER_STEP):
        yield dataclasses.replace(image, objects=objects[start:start + OBJECTS_PER_STEP])


class ShapedStep(NamedTuple):
    """One step of ``shaped_steps``: ``step`` (an ``object_steps`` item of image number
    ``index``), ``done`` objects of that image before it, its ``shapes``, and its px-unit
    ``metrics_table`` rows (``(len(step.objects), len(METRICS))``) if asked for, else None."""

    index: int
    step: ImageRecord
    done: int
    shapes: ImageShapes
    table: Optional[np.ndarray]


def shaped_steps(images: Sequence[ImageRecord], with_metrics: bool = False) -> Iterator[ShapedStep]:
    """Every ``object_steps`` item of ``images``, in order, with its geometry: consecutive
    steps are grouped up to ``OBJECTS_PER_STEP`` objects (a small image does not make a group
    alone) and each group's ``image_shapes`` (and ``metrics_table``) is one call, then cut
    per step with ``ImageShapes.part``. The results are those of a call per step; numpy and
    shapely's per-call costs are paid once per group instead of once per image.
    Raises what ``image_shapes`` raises (``ValueError`` for a malformed point)."""
    group: list[tuple[int, ImageRecord, int]] = []
    size = 0

    def flush() -> Iterator[ShapedStep]:
        objects = [obj for _, step, _ in group for obj in step.objects]
        shapes = image_shapes(objects)
        table = metrics_table(shapes.geoms, shapes.area) if with_metrics else None
        at = 0
        for index, step, done in group:
            k = len(step.objects)
            yield ShapedStep(index, step, done, shapes.part(at, at + k), None if table is None else table[at:at + k])
            at += k

    for index, image in enumerate(images):
        done = 0
        for step in object_steps(image):
            k = len(step.objects)
            if group and size + k > OBJECTS_PER_STEP:
                yield from flush()
                group, size = [], 0
            group.append((index, step, done))
            size += k
            done += k
    if group:
        yield from flush()


def write_coco_yolo(sink: ZipSink, project: ProjectRecord, selected: Sequence[ImageRecord],
                    names: dict[int, ArchiveName], formats: Sequence[str], warnings: list[str],
                    progress: Progress, tmpdir: Optional[str] = None) -> dict[str, int]:
    """Write ``annotations/coco/annotations.json`` (if ``"coco"`` in ``formats``) and the YOLO
    files (if ``"yolo"``) of ``selected`` into ``sink``; skip warnings go to ``warnings`` (all
    COCO ones, then all YOLO ones, as if written one after the other). Progress: one unit per
    image and format, stage ``annotations``, messages ``COCO: image k of n`` (or ``YOLO: ...``
    without COCO). Returns ``{"coco_annotations": .., "yolo_lines": ..}`` for the formats
    written. ``tmpdir``: where the YOLO texts wait (default: the system's)."""
    do_coco, do_yolo = "coco" in formats, "yolo" in formats
    n, per_image = len(selected), int(do_coco) + int(do_yolo)
    counts: dict[str, int] = {}
    if not per_image:
        return counts
    label = "COCO" if do_coco else "YOLO"
    ids = coco.category_ids(project, selected)
    class_index = {name: i - 1 for name, i in ids.items()}
    yolo_warnings: list[str] = []
    labels: list[tuple[str, int]] = []  # (member name, length), one after another in the spool
    lines = 0
    with tempfile.TemporaryFile(dir=tmpdir) as spool:
        with (sink.text_member("annotations/coco/annotations.json", deflate_on_thread=True, tmpdir=tmpdir)
              if do_coco else nullcontext()) as text:
            if text is not None:
                for chunk in coco.iter_coco_head(project, selected, names, ids):
                    text.write(chunk)
            next_id = 1
            parts: list[str] = []

            def spool_labels(image: ImageRecord) -> None:
                nonlocal lines
                data = "".join(line + "\n" for line in parts).encode("utf-8")
                lines += len(parts)
                labels.append((f"{YOLO_DIR}/labels/{names[image.id].stem}.txt", len(data)))
                spool.write(data)
                parts.clear()

            for index, step, done, shapes, _ in shaped_steps(selected):
                image = selected[index]
                message = f"{label}: image {index + 1} of {n}"
                total = len(image.objects)
                if done == 0:  # an image's first step
                    if index and do_yolo:
                        spool_labels(selected[index - 1])
                    progress.report("annotations", index * per_image, message)
                else:
                    progress.report("annotations", (index + done / total) * per_image, message)

                def every_25(k: int, _n: int, _done: int = done, _message: str = message, _i: int = index,
                             _total: int = total) -> None:
                    progress.report("annotations", (_i + (_done + k) / _total) * per_image, _message)

                if text is not None:
                    annotations = list(coco.image_annotations(step, next_id, ids, warnings, every_25, shapes))
                    if annotations:
                        text.write(coco.annotations_text(annotations, next_id == 1))
                        next_id = annotations[-1]["id"] + 1
                if do_yolo:
                    parts.extend(yolo.image_lines(step, class_index, yolo_warnings, shapes))
            if selected and do_yolo:
                spool_labels(selected[-1])
            if text is not None:
                text.write(coco.COCO_TAIL)
                counts["coco_annotations"] = next_id - 1
        progress.advance(n * per_image)
        if do_yolo:
            sink.write_text(f"{YOLO_DIR}/data.yaml", yolo.data_yaml(list(ids)))
            sink.write_text(f"{YOLO_DIR}/classes.txt", yolo.classes_txt(list(ids)))
            spool.seek(0)
            for index, (name, length) in enumerate(labels):
                if index % 64 == 0:
                    progress.report("annotations", 0, f"YOLO: writing label files, {index + 1} of {n}")
                with sink.member(name) as raw:
                    raw.write(spool.read(length))
            counts["yolo_lines"] = lines
            warnings.extend(yolo_warnings)
    return counts

