"""Overlay PNGs (``visualizations/<stem>_overlay.png``): the image with its objects drawn on it.

The image is shown as 8-bit RGB (``display.display_rgb``: contrast-stretched where needed, with
a floor on the range). On it, in this order, so that what must stay readable comes last:
1. every exterior outline in ``outline_color``, ``stroke_width`` px wide, at ``opacity``;
2. every hole outline above them, dashed in ``hole_color`` over a dark edge: where another
   object sits inside a hole, its outline shows between the dashes and the hole still reads;
3. with ``show_numbers``, each object's id (Pillow's default font, outlined in black, at
   least 60 % opaque): centred on a point inside the object (``representative_point``) where
   there is room, else moved nearby with a thin leader line to that point, smaller if need be
   down to ``MIN_READABLE_PX`` (``overlay_labels.place_labels``); no number overlaps another,
   the legend, or leaves the image, and one with no room at all is left out with a note;
4. a one-row legend (outline, hole and number samples) in the corner that covers the fewest
   objects, on images large enough for it (``_LEGEND_SHARE`` of each side at most).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import IO, Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.models import VisualizationOptions
from server.archive.display import display_rgb
from server.archive.geometry import clean_polygons, to_shapely
from server.archive.overlay_labels import Box, Placed, place_labels
from server.domain import ImageRecord
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, check_canvas
from server.imaging import read_image

MIN_READABLE_PX = 9
_LEGEND_SHARE = (0.6, 0.2)  # the legend takes at most this share of the width and the height
_PAD = 3.0
_DARK = (0, 0, 0)

Rgba = tuple[int, int, int, int]


def _never() -> None:
    """The default ``check``: nothing cancels."""


def _hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class _Fonts:
    """Pillow's default font by size, and the box a number takes (with its black edge)."""

    def __init__(self, draw: ImageDraw.ImageDraw) -> None:
        self.draw = draw
        self._fonts: dict[int, ImageFont.ImageFont] = {}
        self._boxes: dict[tuple[str, int], tuple[float, ...]] = {}

    def font(self, size: int):
        if size not in self._fonts:
            self._fonts[size] = ImageFont.load_default(size=size)
        return self._fonts[size]

    @staticmethod
    def edge(size: int) -> int:
        return max(1, size // 12)

    def _bbox(self, text: str, size: int) -> tuple[float, float, float, float]:
        key = (text, size)
        if key not in self._boxes:
            box = self.draw.textbbox((0, 0), text, font=self.font(size), anchor="lt", stroke_width=self.edge(size))
            self._boxes[key] = tuple(float(v) for v in box)
        return self._boxes[key]

    def measure(self, text: str, size: int) -> tuple[float, float]:
        """The width and height (px) ``text`` takes at ``size``, its black edge included."""
        x0, y0, x1, y1 = self._bbox(text, size)
        return x1 - x0, y1 - y0

    def draw_in(self, box: Box, text: str, size: int, fill: Rgba) -> None:
        """Draw ``text`` so that its inked box is ``box`` (as ``measure`` sized it)."""
        x0, y0, _, _ = self._bbox(text, size)
        self.draw.text((box[0] - x0, box[1] - y0), text, fill=fill, font=self.font(size), anchor="lt",
                       stroke_width=self.edge(size), stroke_fill=(*_DARK, fill[3]))


def _shifted(ring) -> list[tuple[float, float]]:
    # COCO puts pixel centres at +0.5, Pillow at integers.
    return [(x - 0.5, y - 0.5) for x, y in ring]


def _dashes(points: Sequence[tuple[float, float]], dash: float, gap: float):
    """The dashes ``[(start, end), ...]`` of the closed polyline ``points``: ``dash`` px drawn,
    ``gap`` px left out, along its whole length."""
    ring = list(points) + list(points[:1])
    period, at = dash + gap, 0.0
    for (x0, y0), (x1, y1) in zip(ring, ring[1:]):
        length = math.hypot(x1 - x0, y1 - y0)
        if length == 0:
            continue
        t = 0.0
        while t < length:
            phase = (at + t) % period
            run = (dash - phase) if phase < dash else (period - phase)
            step = min(run, length - t)
            if phase < dash:
                a, b = t / length, (t + step) / length
                yield (x0 + (x1 - x0) * a, y0 + (y1 - y0) * a), (x0 + (x1 - x0) * b, y0 + (y1 - y0) * b)
            t += step
        at += length


def _draw_hole(draw: ImageDraw.ImageDraw, ring, colour: Rgba, width: int) -> None:
    dash, gap = 3.0 * width + 3, 1.5 * width + 2
    for start, end in _dashes(_shifted(ring), dash, gap):
        draw.line([start, end], fill=(*_DARK, colour[3]), width=width + 2)
        draw.line([start, end], fill=colour, width=width)


def _bounds(cleaned: list) -> np.ndarray:
    """``(n, 4)`` x0, y0, x1, y1 (Pillow px) of the exteriors of each object that has any."""
    out = []
    for polygons in cleaned:
        points = np.array([pt for rings in polygons for pt in rings[0]], dtype=float).reshape(-1, 2) - 0.5
        if len(points):
            out.append([*points.min(axis=0), *points.max(axis=0)])
    return np.array(out, dtype=float).reshape(-1, 4)


def _legend_items(options: VisualizationOptions) -> list[tuple[str, str]]:
    items = [("outline", "object"), ("hole", "hole")]
    if options.show_numbers:
        items.append(("number", "object id"))
    return items


def _legend_row(fonts: _Fonts, options: VisualizationOptions, size: int) -> tuple[list[float], float, float]:
    """The x offset of each legend item's sample, and the row's width and height (px): one row
    of sample + words per item, ``_PAD`` px around."""
    offsets, x, height = [], _PAD, 0.0
    for _, words in _legend_items(options):
        w, h = fonts.measure(words, size)
        offsets.append(x)
        x += 2 * size + 3 + w + 2 * _PAD
        height = max(height, h)
    return offsets, x - _PAD, height + 2 * _PAD


def _legend_box(fonts: _Fonts, options: VisualizationOptions, size: int, width: int, height: int,
                bounds: np.ndarray) -> Optional[Box]:
    """The legend's box in the corner whose box covers the fewest objects' bounds, or None when
    it would take more than ``_LEGEND_SHARE`` of the image."""
    _, w, h = _legend_row(fonts, options, size)
    if w > _LEGEND_SHARE[0] * width or h > _LEGEND_SHARE[1] * height:
        return None
    corners = [(1, 1), (width - 1 - w, 1), (1, height - 1 - h), (width - 1 - w, height - 1 - h)]

    def covered(corner) -> int:
        x0, y0 = corner
        if not len(bounds):
            return 0
        return int(np.count_nonzero((bounds[:, 0] < x0 + w) & (bounds[:, 2] > x0) &
                                    (bounds[:, 1] < y0 + h) & (bounds[:, 3] > y0)))

    x0, y0 = min(corners, key=covered)
    return (x0, y0, x0 + w, y0 + h)


def _draw_legend(draw: ImageDraw.ImageDraw, fonts: _Fonts, options: VisualizationOptions, box: Box, size: int,
                 outline: Rgba, hole: Rgba, label: Rgba) -> None:
    draw.rectangle(box, fill=(0, 0, 0, 150))
    offsets, _, _ = _legend_row(fonts, options, size)
    y = (box[1] + box[3]) / 2
    stroke = max(1, options.stroke_width)
    for (kind, words), offset in zip(_legend_items(options), offsets):
        x = box[0] + offset
        if kind == "outline":
            draw.line([(x, y), (x + 2 * size, y)], fill=outline, width=stroke)
        elif kind == "hole":
            _draw_hole(draw, [(x + 0.5, y + 0.5), (x + 2 * size + 0.5, y + 0.5)], hole, stroke)
        else:
            w, h = fonts.measure("7", size)
            fonts.draw_in((x, y - h / 2, x + w, y + h / 2), "7", size, label)
            draw.line([(x + w + 1, y), (x + 2 * size, y)], fill=label, width=1)
        w, h = fonts.measure(words, size)
        fonts.draw_in((x + 2 * size + 3, y - h / 2, x + 2 * size + 3 + w, y + h / 2), words, size,
                      (255, 255, 255, 255))


def _leader(draw: ImageDraw.ImageDraw, placed: Placed, colour: Rgba) -> None:
    ax, ay = placed.anchor
    x0, y0, x1, y1 = placed.box
    end = (min(max(ax, x0), x1), min(max(ay, y0), y1))
    draw.line([(ax, ay), end], fill=(*_DARK, colour[3]), width=3)
    draw.line([(ax, ay), end], fill=colour, width=1)
    draw.ellipse((ax - 1.5, ay - 1.5, ax + 1.5, ay + 1.5), fill=colour)


@dataclass
class OverlayLayout:
    """Where the legend (``legend``, None when the image is too small for it) and each object's
    number (``numbers``, in object order, None where there was no room) go, and the font
    cache they were measured with."""

    legend: Optional[Box]
    numbers: list[Optional[Placed]]
    fonts: _Fonts
    legend_size: int


def _anchors(image: ImageRecord, cleaned: list) -> tuple[list[tuple[float, float]], list[str]]:
    anchors, texts = [], []
    for obj, polygons in zip(image.objects, cleaned):
        geom = to_shapely(polygons)
        if geom.is_empty:
            continue
        point = max(geom.geoms, key=lambda p: p.area).representative_point()
        anchors.append((point.x - 0.5, point.y - 0.5))
        texts.append(str(obj.id))
    return anchors, texts


def overlay_layout(image: ImageRecord, options: VisualizationOptions, width: int, height: int,
                   draw: Optional[ImageDraw.ImageDraw] = None, cleaned: Optional[list] = None) -> OverlayLayout:
    """The legend and number placement of ``image``'s overlay of ``width`` x ``height`` px (see
    the module docstring); ``draw`` measures the texts (a scratch one when None); ``cleaned``:
    each object's ``clean_polygons`` if already made."""
    if draw is None:
        draw = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    if cleaned is None:
        cleaned = [clean_polygons(obj.polygons) for obj in image.objects]
    fonts = _Fonts(draw)
    bounds = _bounds(cleaned)
    legend, legend_size = None, MIN_READABLE_PX
    for legend_size in range(max(MIN_READABLE_PX, min(options.font_size, 14)), MIN_READABLE_PX - 1, -1):
        legend = _legend_box(fonts, options, legend_size, width, height, bounds)
        if legend is not None:
            break
    numbers: list[Optional[Placed]] = []
    if options.show_numbers:
        anchors, texts = _anchors(image, cleaned)
        size = options.font_size
        numbers = place_labels(anchors, texts, fonts.measure, width, height, size, min(size, MIN_READABLE_PX),
                               [legend] if legend else [])
    return OverlayLayout(legend, numbers, fonts, legend_size)


def _draw_numbers(draw: ImageDraw.ImageDraw, layout: OverlayLayout, colour: Rgba) -> None:
    fonts = layout.fonts
    for p in layout.numbers:
        if p is not None and p.moved:
            _leader(draw, p, colour)
    for p in layout.numbers:
        if p is not None:
            fonts.draw_in(p.box, p.text, p.size, colour)


def _left_out_note(image: ImageRecord, cleaned: list, layout: OverlayLayout) -> Optional[str]:
    _, texts = _anchors(image, cleaned) if any(p is None for p in layout.numbers) else ([], [])
    left_out = [t for t, p in zip(texts, layout.numbers) if p is None]
    if not left_out:
        return None
    shown = ", ".join(left_out[:10]) + (" ..." if len(left_out) > 10 else "")
    return f"{len(left_out)} object numbers left out, no room for them: {shown}"


def render_overlay(
    image: ImageRecord,
    options: VisualizationOptions,
    source: Optional[Union[str, os.PathLike, bytes]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
    check: Optional[Callable[[], None]] = None,
    notes: Optional[list[str]] = None,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> Image.Image:
    """The overlay of ``image`` as an RGB Pillow image of the source's size (see the module
    docstring for what is drawn).

    ``source`` is the image file (path or its bytes, decoded by ``server.imaging.read_image``:
    TIFF through tifffile, the rest through Pillow); ``None`` draws on black of
    ``image.width`` x ``image.height``. Coordinates are COCO continuous px; Pillow puts integer
    coordinates at pixel centres, hence the 0.5 px shift. ``progress(done, total)`` is called
    every 25 objects and may raise to cancel. ``check()`` (optional) is the cheap cancel probe
    of the long steps: called for every block the decoder reads and between decoding,
    contrast stretch, drawing and compositing; whatever it raises propagates unchanged.
    ``notes`` (optional) gets a line when object numbers had to be left out.
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
    width, height = base.size
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = int(round(options.opacity * 255))
    outline = (*_hex_rgb(options.outline_color), alpha)
    hole = (*_hex_rgb(options.hole_color), alpha)
    label = (*_hex_rgb(options.outline_color), max(alpha, 160))
    stroke = options.stroke_width
    cleaned = []
    total = len(image.objects)
    for index, obj in enumerate(image.objects):
        if progress is not None and index and index % 25 == 0:
            progress(index, total)
        polygons = clean_polygons(obj.polygons)
        cleaned.append(polygons)
        for rings in polygons:
            pts = _shifted(rings[0])
            draw.line(pts + pts[:1], fill=outline, width=stroke, joint="curve")
    check()
    for polygons in cleaned:
        for rings in polygons:
            for ring in rings[1:]:
                _draw_hole(draw, ring, hole, stroke)
    check()
    layout = overlay_layout(image, options, width, height, draw, cleaned)
    if options.show_numbers:
        _draw_numbers(draw, layout, label)
        note = _left_out_note(image, cleaned, layout)
        if note and notes is not None:
            notes.append(note)
    if layout.legend is not None:
        _draw_legend(draw, layout.fonts, options, layout.legend, layout.legend_size, outline, hole, label)
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
