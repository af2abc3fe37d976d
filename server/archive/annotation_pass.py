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
from typing import Iterator, Optional, Sequence

from server.archive import coco, yolo
from server.archive.names import ArchiveName
from server.archive.readme import YOLO_DIR
from server.archive.shapes import image_shapes
from server.archive.zipout import Progress, ZipSink
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
        with sink.text_member("annotations/coco/annotations.json") if do_coco else nullcontext() as text:
            if text is not None:
                for chunk in coco.iter_coco_head(project, selected, names, ids):
                    text.write(chunk)
            next_id = 1
            for index, image in enumerate(selected):
                message = f"{label}: image {index + 1} of {n}"
                progress.report("annotations", index * per_image, message)
                parts: list[str] = []
                total, done = len(image.objects), 0
                for step in object_steps(image):
                    if done:
                        progress.report("annotations", (index + done / total) * per_image, message)

                    def every_25(k: int, _n: int, _done: int = done, _message: str = message, _i: int = index) -> None:
                        progress.report("annotations", (_i + (_done + k) / total) * per_image, _message)

                    shapes = image_shapes(step.objects)
                    if text is not None:
                        annotations = list(coco.image_annotations(step, next_id, ids, warnings, every_25, shapes))
                        if annotations:
                            text.write(coco.annotations_text(annotations, next_id == 1))
                            next_id = annotations[-1]["id"] + 1
                    if do_yolo:
                        parts.extend(yolo.image_lines(step, class_index, yolo_warnings, shapes))
                    done += len(step.objects)
                if do_yolo:
                    data = "".join(line + "\n" for line in parts).encode("utf-8")
                    lines += len(parts)
                    labels.append((f"{YOLO_DIR}/labels/{names[image.id].stem}.txt", len(data)))
                    spool.write(data)
            if text is not None:
                text.write(coco.COCO_TAIL)
                counts["coco_annotations"] = next_id - 1
        progress.advance(n * per_image)
        if do_yolo:
            # data.yaml sits two folders below the archive root, where images/ is.
            sink.write_text(f"{YOLO_DIR}/data.yaml", yolo.data_yaml(list(ids), "../../images"))
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

