"""Readable overlays (issue 19, part 3): numbers never overlap or leave the image, holes stay
visible above other outlines, a legend sits in a free corner, flat images stay flat."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.models import VisualizationOptions
from archive_helpers import square
from server.archive.display import display_rgb
from server.archive.overlay import overlay_layout, render_overlay
from server.archive.overlay_labels import GAP, place_labels
from server.domain import ImageRecord, SegObject


def _measure(text, size):
    return 0.6 * size * len(text), float(size)


def _assert_readable(placed, width, height, reserved=()):
    boxes = [p.box for p in placed if p is not None] + list(reserved)
    for k, a in enumerate(boxes):
        assert a[0] >= 0 and a[1] >= 0 and a[2] <= width and a[3] <= height, a
        for b in boxes[k + 1:]:
            assert a[2] + GAP <= b[0] or b[2] + GAP <= a[0] or a[3] + GAP <= b[1] or b[3] + GAP <= a[1], (a, b)


def test_numbers_in_a_dense_cluster_move_apart_with_leaders():
    rng = np.random.default_rng(1)
    anchors = [tuple(xy) for xy in (100 + rng.random((60, 2)) * 12).tolist()]
    texts = [str(k + 1) for k in range(60)]
    placed = place_labels(anchors, texts, _measure, 200, 200, 12, 9)
    assert all(p is not None for p in placed)
    _assert_readable(placed, 200, 200)
    assert sum(p.moved for p in placed) >= 40  # most had to move, each with a leader to its anchor
    assert all(p.text == t and p.anchor == a for p, t, a in zip(placed, texts, anchors))


def test_numbers_at_the_border_stay_inside_and_shrink_only_to_the_minimum():
    placed = place_labels([(0, 0), (199, 5), (3, 99), (100, 99.5)], ["1", "22", "333", "4444"], _measure,
                          200, 100, 12, 9)
    _assert_readable(placed, 200, 100)
    assert all(p is not None and p.size == 12 for p in placed)
    crowded = place_labels([(20, 10)] * 40, [str(k) for k in range(40)], _measure, 40, 20, 12, 9)
    _assert_readable([p for p in crowded if p is not None], 40, 20)
    assert any(p is None for p in crowded)  # no room left: left out, never on top of another
    low = place_labels([(20, 5)], ["7"], _measure, 40, 11, 12, 9)  # too low a strip for 12 px
    assert low[0] is not None and low[0].size < 12 and low[0].size >= 9
    assert place_labels([(20, 4)], ["7"], _measure, 40, 8, 12, 9) == [None]  # not even 9 px fit


def test_a_legend_box_is_never_covered_by_a_number():
    reserved = [(0.0, 0.0, 120.0, 20.0)]
    placed = place_labels([(10.0 + 10 * k, 8.0) for k in range(10)], [str(k) for k in range(10)], _measure,
                          200, 100, 12, 9, reserved)
    _assert_readable(placed, 200, 100, reserved)


def test_holes_are_drawn_above_the_outline_of_an_object_inside_them():
    ring = SegObject(1, "c", [[square(20, 20, 24), square(28, 28, 8)]])
    island = SegObject(2, "c", [[square(28, 28, 8)]])  # fills the hole exactly: the same outline
    options = VisualizationOptions(outline_color="#00ff00", hole_color="#ff00ff", stroke_width=1, show_numbers=False)
    px = np.asarray(render_overlay(ImageRecord(1, "a.png", 64, 64, None, [ring, island]), options))
    edge = np.zeros((64, 64), dtype=bool)  # the hole's outline, y = 28 and x = 28 (pixel rows/cols 27..28)
    edge[27:29, 27:37] = edge[35:37, 27:37] = edge[27:37, 27:29] = edge[27:37, 35:37] = True
    colours = [tuple(c) for c in px[edge]]
    magenta, green = colours.count((255, 0, 255)), colours.count((0, 255, 0))
    assert magenta >= 0.3 * len(colours)  # the hole shows, above the island's outline
    assert green > 0  # and the island's outline shows between the dashes


def test_a_flat_image_stays_dark_and_flat():
    rng = np.random.default_rng(2)
    empty = rng.integers(129, 178, (52, 70)).astype(np.uint16)  # BBBC039's empty field: 48 levels of noise
    shown = np.asarray(display_rgb(empty))[:, :, 0]
    assert shown.max() <= 50 and shown.std() < 15
    nuclei = empty.copy()
    nuclei[10:30, 10:30] = 1300
    assert np.asarray(display_rgb(nuclei))[:, :, 0].max() == 255  # real contrast is still stretched
    dark8 = rng.integers(0, 6, (52, 70)).astype(np.uint8)
    assert np.asarray(display_rgb(dark8)).max() <= 50


def test_the_legend_takes_the_emptiest_corner_and_is_left_out_of_tiny_images():
    objects = [SegObject(k + 1, "c", [[square(5 + 12 * (k % 5), 5 + 12 * (k // 5), 8)]]) for k in range(10)]
    image = ImageRecord(1, "a.png", 300, 200, None, objects)  # objects in the top-left corner only
    layout = overlay_layout(image, VisualizationOptions(), 300, 200)
    assert layout.legend is not None
    lx0, ly0, lx1, ly1 = layout.legend
    assert lx0 > 61 or ly0 > 25  # away from the objects (5..61 x 5..25), in another corner
    assert lx0 <= 2 or lx1 >= 298 and (ly0 <= 2 or ly1 >= 198)
    px = np.asarray(render_overlay(image, VisualizationOptions()))
    x0, y0, x1, y1 = (int(v) for v in layout.legend)
    assert (px[y0:y1, x0:x1] >= 200).all(axis=2).any()  # its white words
    tiny = ImageRecord(1, "a.png", 64, 48, None, objects[:2])
    assert overlay_layout(tiny, VisualizationOptions(), 64, 48).legend is None


@pytest.mark.parametrize("font_size", [12, 20])
def test_real_images_get_every_number_readable(real_project, font_size):
    options = VisualizationOptions(font_size=font_size)
    moved = placed_count = 0
    for image in real_project.images:
        layout = overlay_layout(image, options, image.width, image.height)
        placed = [p for p in layout.numbers if p is not None]
        _assert_readable(placed, image.width, image.height, [layout.legend] if layout.legend else [])
        assert all(p.size >= min(font_size, 9) for p in placed)
        placed_count += len(placed)
        moved += sum(p.moved for p in placed)
    assert placed_count == sum(len(im.objects) for im in real_project.images) == 1122
    assert moved > 0


def test_numbers_left_out_are_reported(tmp_path):
    objects = [SegObject(k + 1, "c", [[square(1 + 2 * (k % 6), 1 + 2 * (k // 6), 1)]]) for k in range(36)]
    notes = []
    render_overlay(ImageRecord(1, "a.png", 14, 14, None, objects), VisualizationOptions(), notes=notes)
    assert len(notes) == 1 and "object numbers left out" in notes[0]
