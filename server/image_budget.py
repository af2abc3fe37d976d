"""The pixel budget of one image, checked from the file's header before any pixel is decoded.

A few kilobytes of compressed data can declare gigapixels (a tiled TIFF of 65536 x 65536,
a PNG of 13000 x 13000 zeros), so the size is read from the header and the image refused
before a decoder allocates anything:

- TIFF (tifffile): every page's ``imagewidth x imagelength x imagedepth`` counts, summed
  over all pages (at most ``MAX_TIFF_PAGES`` pages are looked at); the first page, the one
  decoded, has its decoded size from its shape and sample type.
- Everything else (Pillow): the header's width and height, the decoded size from the mode.

An image is refused (:class:`ImageTooLarge`) when its pixels exceed ``max_pixels``
(``--max-image-pixels``, default ``DEFAULT_MAX_IMAGE_PIXELS`` = 100 megapixels: a whole-slide
scan needs tiling anyway, and a 10,000 x 10,000 field of view fits) or when the plane that is
decoded would take more than ``BYTES_PER_PIXEL`` (4) bytes per pixel of the budget (400 MB
by default: 100 MP of 8-bit RGBA or 32-bit grey, 50 MP of 16-bit RGBA). What decoding and
the work after it may hold on top is stated in ``server/DECISIONS.md`` ("pixel budget").
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import tifffile
from PIL import Image

DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
BYTES_PER_PIXEL = 4
MAX_TIFF_PAGES = 10_000
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PILLOW_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16L": 2, "I;16B": 2,
                 "I;16N": 2, "RGB": 3, "YCbCr": 6, "LAB": 6, "HSV": 6, "RGBA": 4, "RGBa": 4, "RGBX": 4,
                 "CMYK": 7, "I": 4, "F": 4}
"""Decoded bytes per pixel of a Pillow mode as ``read_image`` returns it (conversions to
RGB count the copy they make)."""

# The budget replaces Pillow's own decompression-bomb check, which would refuse a large image
# (over 2 x 89 MP) inside Image.open, before the budget is asked, with a less useful message.
Image.MAX_IMAGE_PIXELS = None

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]


class ImageHeaderError(ValueError):
    """The header cannot be read (the file is not an image this service decodes)."""


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: ``width`` x ``height`` of the first plane, ``pages``,
    ``pixels`` over all pages, ``decoded_bytes`` of the plane that is decoded, and
    ``sample`` (e.g. ``uint16 x 3``)."""

    width: int
    height: int
    pages: int
    pixels: int
    decoded_bytes: int
    sample: str

    def describe(self) -> str:
        pages = f" in {self.pages} pages ({self.pixels:,} pixels)" if self.pages > 1 else f" ({self.pixels:,} pixels)"
        return f"{self.width}x{self.height}{pages}, {self.sample}"


class ImageTooLarge(ValueError):
    """The image is over the budget; ``str(err)`` says its size and the limit."""

    def __init__(self, header: ImageHeader, max_pixels: int, reason: str):
        self.header = header
        self.max_pixels = max_pixels
        super().__init__(reason)


def _file(source: Source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return open(source, "rb")


def _tiff_header(fh) -> ImageHeader:
    with tifffile.TiffFile(fh) as tif:
        first = tif.pages[0]
        pixels, pages = 0, 0
        for page in tif.pages:
            pages += 1
            if pages > MAX_TIFF_PAGES:
                break
            pixels += int(page.imagewidth) * int(page.imagelength) * max(1, int(page.imagedepth))
        shape = tuple(int(n) for n in first.shape)
        dtype = np.dtype(first.dtype) if first.dtype is not None else np.dtype(np.uint8)
        samples = int(first.samplesperpixel)
        return ImageHeader(int(first.imagewidth), int(first.imagelength), pages, pixels,
                           int(np.prod(shape, dtype=object)) * dtype.itemsize,
                           f"{dtype.name} x {samples}" if samples > 1 else dtype.name)


def _pillow_header(fh) -> ImageHeader:
    with Image.open(fh) as img:
        width, height = int(img.width), int(img.height)
        per_pixel = _PILLOW_BYTES.get(img.mode, 8)
        return ImageHeader(width, height, 1, width * height, width * height * per_pixel, f"mode {img.mode}")


def read_header(source: Source) -> ImageHeader:
    """The header of an image file (path or bytes). Raises ``FileNotFoundError`` or
    :class:`ImageHeaderError`."""
    with _file(source) as fh:
        head = fh.read(4)
        fh.seek(0)
        try:
            return _tiff_header(fh) if head in _TIFF_MAGIC else _pillow_header(fh)
        except Exception as exc:  # decoders raise many kinds of errors on corrupt headers
            raise ImageHeaderError(f"{exc.__class__.__name__}: {exc}") from exc


def over_budget(header: ImageHeader, max_pixels: int) -> Optional[str]:
    """Why ``header`` is over a budget of ``max_pixels``, or None when it fits."""
    limit_bytes = BYTES_PER_PIXEL * max_pixels
    if header.pages > MAX_TIFF_PAGES:
        return f"has more than {MAX_TIFF_PAGES:,} pages"
    if header.pixels > max_pixels:
        return (f"is {header.describe()}: over the limit of {max_pixels:,} pixels per image "
                "(--max-image-pixels)")
    if header.decoded_bytes > limit_bytes:
        return (f"is {header.describe()}: {header.decoded_bytes / 1e6:,.0f} MB decoded, over the limit of "
                f"{limit_bytes / 1e6:,.0f} MB ({BYTES_PER_PIXEL} bytes per pixel of --max-image-pixels)")
    return None


def check_canvas(width: int, height: int, max_pixels: int) -> None:
    """Raise :class:`ImageTooLarge` when a picture of ``width`` x ``height`` (an overlay
    drawn at a stored image's size) is over a budget of ``max_pixels``."""
    pixels = max(0, int(width)) * max(0, int(height))
    if pixels > max_pixels:
        header = ImageHeader(int(width), int(height), 1, pixels, 3 * pixels, "RGB")
        raise ImageTooLarge(header, max_pixels, f"is {header.describe()}: over the limit of {max_pixels:,} "
                                                "pixels per image (--max-image-pixels)")


def check_budget(source: Source, max_pixels: int) -> ImageHeader:
    """The header of ``source`` when it fits ``max_pixels``; raises :class:`ImageTooLarge`
    (or ``FileNotFoundError``/:class:`ImageHeaderError`) otherwise. Nothing is decoded."""
    header = read_header(source)
    reason = over_budget(header, max_pixels)
    if reason is not None:
        raise ImageTooLarge(header, max_pixels, reason)
    return header
