"""Overlay PNGs (``visualizations/<stem>_overlay.png``): the image with the object outlines.

The image is shown as 8-bit RGB. 8-bit data is kept as it is unless dim (its 99.5th
percentile below 128, as in fluorescence PNGs with a maximum of 60); dim 8-bit data and
anything deeper (16-bit, 32-bit, float) is contrast-stretched: linearly from the 0.5th to the
99.9th percentile of all channels together (one mapping for R, G and B, so colours keep their
hue; 99.9 so that sparse bright nuclei keep their texture instead of saturating).
Exterior outlines are drawn in ``outline_color`` and hole outlines in ``hole_color``, ``stroke_width``
px wide, at ``opacity``; with ``show_numbers`` each object's id is written at a point inside it
(``representative_point``) in ``font_size`` px (Pillow's default font, outlined in black so it
reads on any background; numbers stay at least 60 % opaque so a faint outline setting does
not make them unreadable).
"""
from __future__ import annotations

import os
from typing import IO, Callable, Optional, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.models import VisualizationOptions
from server.archive.geometry import clean_polygons, to_shapely
from server.domain import ImageRecord
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, check_canvas
from server.imaging import read_image

_DIM_LIMIT = 128
_SAMPLE = 1_000_000  # pixels sampled for the percentiles: enough for a stable stretch


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _never() -> None:
    """The default ``check``: nothing cancels."""


def _stretch(values: np.ndarray, check: Callable[[], None] = _never) -> np.ndarray:
    flat = values.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    lo, hi = np.percentile(flat[::step].astype(np.float64), [0.5, 99.9])
    if hi <= lo:
        hi = lo + 1.0
    check()
    # In place, in steps: a big image costs a few ms per step, and a cancel is seen in between.
    out = values.astype(np.float64)
    out -= lo
    out *= 255.0 / (hi - lo)
    check()
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def display_rgb(arr: np.ndarray, check: Callable[[], None] = _never) -> Image.Image:
    """An 8-bit RGB Pillow image of an image array as ``server.imaging.read_image`` returns it:
    ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), of any dtype
    (bool, uint8, uint16, int, float). See the module docstring for when and how it is
    contrast-stretched. ``check()`` is called between the steps (it may raise to cancel).
    Raises ``ValueError`` for another shape."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"cannot display an array of shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        # Only floats can hold NaN or infinities; integers go to _stretch as they are.
        a = _stretch(np.nan_to_num(a.astype(np.float64)) if a.dtype.kind == "f" else a, check)
    elif a.size and np.percentile(a.reshape(-1)[:: max(1, a.size // _SAMPLE)], 99.5) < _DIM_LIMIT:
        check()
        a = _stretch(a, check)
    check()
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def render_overlay(
    image: ImageRecord,
    options: VisualizationOptions,
    source: Optional[Union[str, os.PathLike, bytes]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    check: Optional[Callable[[], None]] = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Image.Image:
    """The overlay of ``image`` as an RGB Pillow image of the source's size.

    ``source`` is the image file (path or its bytes, decoded by ``server.imaging.read_image``:
    TIFF through tifffile, the rest through Pillow); ``None`` draws on black of
    ``image.width`` x ``image.height``. Coordinates are COCO continuous px; Pillow puts integer
    coordinates at pixel centres, hence the 0.5 px shift. ``progress(done, total)`` is called
    every 25 objects and may raise to cancel. ``check()`` (optional) is the cheap cancel probe
    of the long steps: called for every block the decoder reads and between decoding,
    contrast stretch, drawing and compositing; whatever it raises propagates unchanged.
    Raises ``FileNotFoundError`` or ``server.imaging.ImageReadError`` (a ``ValueError``) for a
    missing or unreadable file, ``server.image_budget.ImageTooLarge`` (a ``ValueError``) when
    the image or ``image.width`` x ``image.height`` is over the pixel budget ``max_pixels``.
    """
    check = check or _never
    check_canvas(image.width, image.height, max_pixels)
    if source is not None:
        pixels = read_image(source, check, max_pixels)
        check()
        base = display_rgb(pixels, check)
        del pixels
    else:
        base = Image.new("RGB", (max(1, image.width), max(1, image.height)))
    check()
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = int(round(options.opacity * 255))
    outline = (*_hex_rgb(options.outline_color), alpha)
    hole = (*_hex_rgb(options.hole_color), alpha)
    width = options.stroke_width
    font = ImageFont.load_default(size=options.font_size) if options.show_numbers else None
    labels: list[tuple[float, float, str]] = []
    total = len(image.objects)
    for index, obj in enumerate(image.objects):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        polygons = clean_polygons(obj.polygons)
        for rings in polygons:
            for k, ring in enumerate(rings):
                pts = [(x - 0.5, y - 0.5) for x, y in ring]
                draw.line(pts + pts[:1], fill=hole if k else outline, width=width, joint="curve")
        if font is not None:
            geom = to_shapely(polygons)
            if not geom.is_empty:
                largest = max(geom.geoms, key=lambda p: p.area)
                point = largest.representative_point()
                labels.append((point.x - 0.5, point.y - 0.5, str(obj.id)))
    check()
    for x, y, text in labels:
        # Numbers go on top of every outline, with a black edge for contrast.
        draw.text((x, y), text, fill=(*outline[:3], max(alpha, 160)), font=font, anchor="mm",
                  stroke_width=max(1, options.font_size // 12), stroke_fill=(0, 0, 0, max(alpha, 160)))
    check()
    composite = Image.alpha_composite(base.convert("RGBA"), layer)
    del base, layer
    check()
    return composite.convert("RGB")


def write_overlay_png(img: Image.Image, stream: IO[bytes]) -> None:
    """Save ``img`` as PNG into the binary ``stream`` (which need not be seekable). Pillow
    writes the compressed data in blocks of at least 64 KiB as it encodes, so a stream whose
    ``write`` raises (``hashing_writer.HashingWriter`` with a poll) stops the encoding there."""
    # Level 3: as small as 6 here at half the time (noisy microscopy compresses little anyway).
    img.save(stream, format="PNG", compress_level=3)
