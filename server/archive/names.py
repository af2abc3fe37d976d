"""Unique, safe file names for the images of one archive.

Every format refers to an image by the same name: ``images/<file_name>`` in the zip, COCO's
``file_name``, YOLO's ``labels/<stem>.txt`` and ``visualizations/<stem>_overlay.png``. Two
project images may share a display name (``ImageRecord.file_name``), and Ultralytics pairs an
image with its label by stem, so names are made unique by stem, case-insensitively (archives
are unpacked on case-insensitive file systems too).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Sequence

from server.domain import ImageRecord

_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10))}
_MAX_STEM = 120


@dataclass(frozen=True)
class ArchiveName:
    """``file_name`` (``stem + suffix``, no folder) of one image inside the archive."""

    image_id: int
    file_name: str
    stem: str
    suffix: str


def safe_name(file_name: str, fallback: str) -> tuple[str, str]:
    """``(stem, suffix)`` of the last path component of ``file_name`` (``/`` and ``\\`` both
    separate folders) with characters that are unsafe in a zip member or on Windows replaced by
    ``_``, outer dots and spaces stripped, the stem cut to 120 characters and Windows device
    names (``con``, ``nul``, ...) prefixed with ``_``. ``fallback`` is the stem when nothing is
    left. The suffix (``.png``; 10 characters at most, else none) is kept as written."""
    base = PureWindowsPath(PurePosixPath(unicodedata.normalize("NFC", file_name)).name).name
    base = _UNSAFE.sub("_", base).strip().strip(".")
    path = PurePosixPath(base) if base else PurePosixPath("")
    suffix = path.suffix if path.suffix and len(path.suffix) <= 10 else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    stem = stem[:_MAX_STEM].strip(" .")
    if not stem:
        stem = fallback
    if stem.lower() in _WINDOWS_RESERVED:
        stem = f"_{stem}"
    return stem, suffix


def assign_archive_names(images: Sequence[ImageRecord]) -> dict[int, ArchiveName]:
    """Map ``image.id`` -> ``ArchiveName``, unique by case-folded stem, in the given order.

    The first image keeps its (sanitised) name; a later image whose stem is taken gets
    ``<stem>_2``, ``<stem>_3``, ... (the first free one), so the result depends only on the
    names and their order. An image without a usable name is called ``image_<id>``; a name
    without an extension takes the one of ``image.path`` if it has one.
    Raises ``ValueError`` if two images share an id.
    """
    used: set[str] = set()
    result: dict[int, ArchiveName] = {}
    for image in images:
        if image.id in result:
            raise ValueError(f"image id {image.id} appears twice")
        stem, suffix = safe_name(image.file_name or "", f"image_{image.id}")
        if not suffix and image.path:
            suffix = PurePosixPath(str(image.path).replace("\\", "/")).suffix
        candidate, n = stem, 1
        while candidate.casefold() in used:
            n += 1
            candidate = f"{stem}_{n}"
        used.add(candidate.casefold())
        result[image.id] = ArchiveName(image.id, candidate + suffix, candidate, suffix)
    return result
