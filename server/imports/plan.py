"""What an import produces (:class:`ImportPlan`) and how it fails (:class:`ImportValidationError`).

Loaders are pure: they read files and return a plan; they never touch the database. A loader
checks everything first and reports ALL problems of the input in one
:class:`ImportValidationError`, so a user can fix a dataset in one go. Every loader also
refuses a ``pixel_size_um`` outside 0.001..1000 and a negative simplification ``tolerance``,
any file larger than ``max_file_bytes`` (default 512 MiB), and any image, mask or label image
over the pixel budget ``max_image_pixels`` (``server.image_budget``, checked from the header
before anything is decoded).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from server.domain import ImageRecord, ProjectRecord
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge
from server.imaging import ImageReadError, read_image

DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024  # per file; a 16-bit 16k x 16k plane is 512 MiB


class ImportValidationError(ValueError):
    """The input cannot be imported. ``problems`` lists every problem found (one line each,
    naming the offending file, image or annotation); ``str(err)`` shows them all."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"import rejected, {len(self.problems)} problem(s):\n{lines}")


@dataclass
class ImportPlan:
    """A validated import, ready to persist.

    - ``name``, ``categories`` (names, in order), ``pixel_size_um`` (micrometres per pixel or
      None), ``description``: the project's fields.
    - ``images``: ``ImageRecord`` per image, in import order, ``id`` 1..n (plan-local),
      ``path`` = the source image file (absolute), ``width``/``height`` in pixels, and
      ``objects`` as ``SegObject`` (ids unique within an image: the source's label value or
      annotation id where it has one, else 1..k; ``source``: the object's identity in the
      input, see ``SegObject``).
    - ``warnings``: things repaired or worth knowing (never reasons to refuse).
    - ``source_format``: ``"label-images"``, ``"dsb2018"``, ``"patch-labels"`` or ``"coco"``.
    """

    name: str
    categories: list[str]
    images: list[ImageRecord]
    source_format: str
    pixel_size_um: Optional[float] = None
    description: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def object_count(self) -> int:
        """Total number of objects over all images."""
        return sum(len(im.objects) for im in self.images)

    def to_project(self, project_id: int = 0) -> ProjectRecord:
        """A ``ProjectRecord`` holding the plan's images (the same ``ImageRecord`` objects) and
        its ``warnings`` as ``import_warnings``; ``synthetic`` is False. The image files are
        at ``image.path``."""
        return ProjectRecord(
            id=project_id,
            name=self.name,
            categories=list(self.categories),
            pixel_size_um=self.pixel_size_um,
            synthetic=False,
            description=self.description,
            images=list(self.images),
            import_warnings=list(self.warnings),
        )

    def sources(self) -> list[str]:
        """The source file path of each image, in order (what ``persist_project`` copies)."""
        return [str(im.path) for im in self.images]


class Checker:
    """Collects problems and warnings while a loader runs (internal helper of the loaders)."""

    def __init__(self, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
                 max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS):
        if max_file_bytes <= 0 or max_image_pixels <= 0:
            raise ValueError("max_file_bytes and max_image_pixels must be positive")
        self.max_file_bytes = max_file_bytes
        self.max_image_pixels = max_image_pixels
        self.problems: list[str] = []
        self.warnings: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def raise_if_any(self) -> None:
        if self.problems:
            raise ImportValidationError(self.problems)

    def options(self, pixel_size_um: Optional[float], tolerance: float) -> None:
        """Record problems with the loader options every loader takes."""
        if pixel_size_um is not None and not (0.001 <= pixel_size_um <= 1000):
            self.problem(f"pixel size {pixel_size_um} um is outside 0.001..1000")
        if not tolerance >= 0:
            self.problem(f"simplification tolerance {tolerance} px is negative")

    def file_ok(self, path: Path, what: str) -> bool:
        """True if ``path`` is an existing file within the size limit; records a problem if not."""
        if not path.is_file():
            self.problem(f"missing {what} file: {path}")
            return False
        size = path.stat().st_size
        if size > self.max_file_bytes:
            self.problem(f"{what} file too large: {path} is {size} bytes, the limit is {self.max_file_bytes}")
            return False
        return True

    def read(self, path: Path, what: str) -> Optional[np.ndarray]:
        """The decoded image at ``path``, or None with a problem recorded (missing, too large
        a file, over the pixel budget, not an image)."""
        if not self.file_ok(path, what):
            return None
        try:
            return read_image(path, max_pixels=self.max_image_pixels)
        except ImageTooLarge as exc:
            self.problem(f"{what} too large: {path} {exc}")
            return None
        except (ImageReadError, OSError) as exc:
            self.problem(f"not an image file ({what}): {path}: {exc}")
            return None


def absolute(path: os.PathLike | str) -> Path:
    """``path`` made absolute (not resolved through symlinks)."""
    return Path(os.path.abspath(os.fspath(path)))
