"""Image reading and previews: formats of the real data, bytes input, errors, stretching."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from server.imaging import ImageReadError, contrast_stretch, encode_png, image_size, preview_png, read_image

from import_helpers import write_png, write_tiff


def _decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def test_reads_the_real_formats(cells_dir):
    dsb = next((cells_dir / "bbbc038_dsb2018" / "stage1_train").glob("*/images/*.png"))
    rgba = read_image(dsb)
    assert rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.dtype == np.uint8
    tif16 = read_image(next((cells_dir / "bbbc039_u2os" / "images").glob("*.tif")))
    assert tif16.shape == (520, 696) and tif16.dtype == np.uint16 and tif16.max() <= 4095
    tif8 = read_image(cells_dir / "stardist_dsb2018" / "tests" / "data" / "img2d.tif")
    assert tif8.shape == (256, 256) and tif8.dtype == np.uint8
    labels = read_image(cells_dir / "stardist_dsb2018" / "stardist" / "data" / "images" / "mask2d.tif")
    assert labels.dtype == np.uint16 and labels.max() == 183
    assert image_size(cells_dir / "bbbc039_u2os" / "masks" / next(
        (cells_dir / "bbbc039_u2os" / "masks").glob("*.png")).name) == (696, 520)


def test_bytes_and_paths_agree(tmp_path):
    arr = (np.arange(12 * 7, dtype=np.uint16).reshape(12, 7) * 300)
    png = write_png(tmp_path / "a.png", arr)
    tif = write_tiff(tmp_path / "a.tif", arr)
    for src in (png, tif, png.read_bytes(), tif.read_bytes()):
        out = read_image(src)
        assert out.dtype == np.uint16 and np.array_equal(out, arr)
    assert image_size(tif.read_bytes()) == (7, 12)


def test_32bit_label_tiff_and_rgb(tmp_path):
    lab = np.zeros((5, 6), np.uint32)
    lab[1, 1] = 70000
    out = read_image(write_tiff(tmp_path / "l.tif", lab))
    assert out.dtype == np.uint32 and out[1, 1] == 70000
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 1] = 9
    assert read_image(write_png(tmp_path / "c.png", rgb)).shape == (4, 4, 3)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError):
        image_size(tmp_path / "notes.png")
    with pytest.raises(ImageReadError):
        read_image(b"II*\x00garbage")


def test_dim_fluorescence_is_stretched_to_full_range():
    rng = np.random.default_rng(0)
    dim = rng.integers(0, 40, (64, 64)).astype(np.uint16)
    dim[20:30, 20:30] = 60
    out = contrast_stretch(dim)
    assert out.dtype == np.uint8 and out.max() == 255 and out.min() == 0
    assert out[25, 25] == 255


def test_preview_size_aspect_and_colour(cells_dir):
    arr = read_image(next((cells_dir / "bbbc038_dsb2018" / "stage1_train").glob("c901*/images/*.png")))
    small = _decode(preview_png(arr, 128))
    assert max(small.shape[:2]) == 128 and small.ndim == 2  # grey stored as RGBA -> grey
    assert small.shape[:2] == (96, 128)  # 1040 x 1388 keeps its aspect
    assert small.max() > 200  # dim fluorescence made visible
    brightfield = read_image(next((cells_dir / "bbbc038_dsb2018" / "stage1_train").glob("0bf33*/images/*.png")))
    colour = _decode(preview_png(brightfield, 64))
    assert colour.shape == (51, 64, 3)  # 256 x 320 (h x w)
    tiny = _decode(preview_png(np.full((10, 20), 7, np.uint16), 256))
    assert tiny.shape == (10, 20) and not tiny.any()  # never enlarged; flat image -> black
    with pytest.raises(ValueError):
        preview_png(arr, 0)


def test_encode_png_round_trip_and_refusal():
    arr = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    assert np.array_equal(_decode(encode_png(arr)), arr)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4), np.float32))
