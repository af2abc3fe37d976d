import numpy as np
import pytest
from PIL import Image

from app.models import VisualizationOptions
from archive_helpers import square
from server.archive.display import display_rgb
from server.archive.overlay import render_overlay
from server.domain import ImageRecord, SegObject


def _count(img: Image.Image, rgb) -> int:
    return int(np.all(np.asarray(img) == rgb, axis=2).sum())


def test_dim_8bit_grey_is_stretched_and_bright_8bit_is_kept():
    dim = (np.arange(64 * 48).reshape(48, 64) % 40).astype(np.uint8)
    shown = np.asarray(display_rgb(dim))
    assert shown.shape == (48, 64, 3) and shown.dtype == np.uint8
    assert shown.max() == 255 and np.array_equal(shown[:, :, 0], shown[:, :, 1])
    bright = (np.arange(64 * 48).reshape(48, 64) % 256).astype(np.uint8)
    assert np.array_equal(np.asarray(display_rgb(bright))[:, :, 0], bright)


def test_16bit_rgb_rgba_are_mapped_to_8bit_rgb():
    deep = np.linspace(100, 4000, 64 * 48).reshape(48, 64).astype(np.uint16)
    shown = np.asarray(display_rgb(deep))
    assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    assert np.all(np.diff(shown[:, :, 0].ravel().astype(int)) >= 0)  # order kept
    rgb = np.random.default_rng(1).integers(0, 256, (10, 12, 3)).astype(np.uint8)
    assert np.array_equal(np.asarray(display_rgb(rgb)), rgb)
    rgba = np.dstack([rgb, np.full((10, 12), 7, np.uint8)])
    assert np.array_equal(np.asarray(display_rgb(rgba)), rgb)
    with pytest.raises(ValueError):
        display_rgb(np.zeros((4, 4, 2), np.uint8))


def _record():
    return ImageRecord(1, "a.png", 64, 48, None, [
        SegObject(1, "c", [[square(10, 10, 20), square(16, 16, 8)]]),
        SegObject(2, "c", [[square(40, 10, 10)], [square(40, 30, 10)]]),
    ])


def test_outlines_holes_and_stroke_width_on_black():
    opts = VisualizationOptions(outline_color="#00ff00", hole_color="#ff00ff", stroke_width=1, show_numbers=False)
    img = render_overlay(_record(), opts)
    assert img.size == (64, 48) and img.mode == "RGB"
    px = np.asarray(img)
    # The top edge of object 1 is y = 10, between pixel rows 9 and 10; its hole's is y = 16.
    assert (0, 255, 0) in {tuple(px[9, 20]), tuple(px[10, 20])}
    assert (255, 0, 255) in {tuple(px[15, 20]), tuple(px[16, 20])}
    assert tuple(px[20, 20]) == (0, 0, 0)  # inside the hole: not filled
    assert tuple(px[40, 5]) == (0, 0, 0)  # far from every outline
    thin = _count(img, (0, 255, 0))
    thick = _count(render_overlay(_record(), opts.model_copy(update={"stroke_width": 3})), (0, 255, 0))
    assert thick > 2 * thin


def test_opacity_blends_with_the_image(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((48, 64), 200, np.uint8)).save(path)
    opts = VisualizationOptions(outline_color="#ff0000", opacity=0.5, stroke_width=1, show_numbers=False)
    px = np.asarray(render_overlay(_record(), opts, str(path)))
    edge = px[9, 20] if px[9, 20, 1] != 200 else px[10, 20]
    assert tuple(edge) == pytest.approx((228, 100, 100), abs=2)
    assert tuple(px[0, 0]) == (200, 200, 200)


def test_numbers_are_drawn_with_the_font_size():
    base = VisualizationOptions(stroke_width=1, show_numbers=False)
    without = np.asarray(render_overlay(_record(), base))
    small = np.asarray(render_overlay(_record(), base.model_copy(update={"show_numbers": True, "font_size": 8})))
    large = np.asarray(render_overlay(_record(), base.model_copy(update={"show_numbers": True, "font_size": 24})))
    changed_small = np.any(small != without, axis=2)
    changed_large = np.any(large != without, axis=2)
    assert changed_small.any()
    assert changed_large.sum() > 2 * changed_small.sum()
    # Object 1's number sits on object 1 (10..30 x 10..30; its black edge may touch the outline).
    ys, xs = np.nonzero(changed_small[:, :35])
    assert xs.min() >= 8 and xs.max() <= 32 and ys.min() >= 8 and ys.max() <= 32


@pytest.mark.parametrize("which", ["rgba_dim_png", "rgb_png", "uint16_tif", "uint8_tif"])
def test_real_images_of_every_kind(real_project, which):
    def pick(im):
        if which == "rgba_dim_png":
            return im.file_name.startswith("00071198")
        if which == "rgb_png":
            return im.file_name.startswith("0bf33d3d")
        if which == "uint16_tif":
            return im.file_name.startswith("IXMtest_A02")
        return im.file_name == "img2d.tif" and im.width == 256

    image = next(im for im in real_project.images if pick(im))
    opts = VisualizationOptions(outline_color="#00ff00", stroke_width=1, opacity=1.0, show_numbers=True)
    img = render_overlay(image, opts, image.path)
    assert img.size == (image.width, image.height)
    px = np.asarray(img)
    assert _count(img, (0, 255, 0)) > 5 * len(image.objects)
    # The image itself is visible (not black) away from the outlines, also for dim data.
    assert np.percentile(px, 99) > 100
