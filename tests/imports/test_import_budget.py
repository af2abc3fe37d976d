"""The pixel budget (issue 16, item 1): every image, mask and label image is checked from its
header before any pixel is decoded (TIFF: all pages; PNG/JPEG: Pillow's header); too big is a
422 naming the file, its size and the limit, and nothing is stored; decoding stays within a
stated multiple of the image's pixels (measured in a child process); a stored image over the
budget cannot make the thumbnail or an export fail."""
from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest
import tifffile
from PIL import Image

from import_helpers import label_scene, write_png, write_tiff
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge, check_budget
from server.imports import load_label_images
from server.imports.plan import ImportValidationError
from tests.service.conftest import Live, start_live
from tests.service.hostile_helpers import state_of

ROOT = Path(__file__).resolve().parents[2]
IMPORT_BYTES_PER_PIXEL = 32
"""The stated bound (server/DECISIONS.md, "pixel budget"): an import holds at most this many
bytes per pixel of its largest image on top of what it held before it started."""


def tiled_tiff(path: Path, side: int = 65536) -> Path:
    """A tiled, compressed 8-bit TIFF declaring ``side`` x ``side`` pixels: a few MB on disk,
    every tile the same encoded block of zeros (nothing big is ever made here)."""
    tile = zlib.compress(bytes(256 * 256))
    with tifffile.TiffWriter(path) as tif:
        tif.write((tile for _ in range((side // 256) ** 2)), shape=(side, side), dtype="uint8",
                  tile=(256, 256), compression="zlib")
    return path


def zero_png(path: Path, width: int, height: int) -> Path:
    """A grey PNG of zeros written chunk by chunk (169 MB of pixels is ~170 KB of file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_the_header_decides_before_anything_is_decoded(tmp_path):
    big = tiled_tiff(tmp_path / "big.tif")
    assert big.stat().st_size < 10_000_000
    with pytest.raises(ImageTooLarge) as err:
        check_budget(big, DEFAULT_MAX_IMAGE_PIXELS)
    assert "65536x65536 (4,294,967,296 pixels)" in str(err.value) and "100,000,000 pixels" in str(err.value)
    png = zero_png(tmp_path / "wide.png", 13000, 13000)
    with pytest.raises(ImageTooLarge, match="13000x13000"):
        check_budget(png, DEFAULT_MAX_IMAGE_PIXELS)
    pages = tmp_path / "pages.tif"
    with tifffile.TiffWriter(pages) as tif:
        for _ in range(3):
            tif.write(np.zeros((600, 600), np.uint8), photometric="minisblack")
    assert check_budget(pages, 1_080_000).pages == 3
    with pytest.raises(ImageTooLarge, match="in 3 pages"):
        check_budget(pages, 1_079_999)
    deep = tmp_path / "deep.tif"
    tifffile.imwrite(deep, np.zeros((600, 600, 4), np.uint16), photometric="rgb")
    with pytest.raises(ImageTooLarge, match="MB decoded"):
        check_budget(deep, 500_000)  # 360,000 pixels, but 8 bytes each: over 4 per pixel of the budget


def _pair(tmp_path: Path, image: Path, mask: Path) -> list:
    return [("images", (image.name, image.read_bytes())), ("masks", (image.stem + mask.suffix, mask.read_bytes()))]


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = start_live(tmp_path_factory.mktemp("budget") / "data", max_image_pixels=1_000_000)
    yield srv
    srv.stop()


def _client(live: Live) -> httpx.Client:
    return live.new_user().http


@pytest.mark.parametrize("bad", ["image", "mask", "both"])
def test_an_upload_over_the_budget_is_a_422_naming_the_file_and_nothing_is_stored(live: Live, tmp_path, bad):
    small_img = write_png(tmp_path / "ok.png", np.full((40, 50), 90, np.uint8))
    small_lab = write_tiff(tmp_path / "ok_lab.tif", label_scene())
    big_img = write_png(tmp_path / "big.png", np.zeros((1000, 1001), np.uint8))
    big_lab = write_tiff(tmp_path / "big_lab.tif", np.zeros((1001, 1000), np.uint16))
    image, mask = {"image": (big_img, small_lab), "mask": (small_img, big_lab), "both": (big_img, big_lab)}[bad]
    before = state_of(live.data_dir)
    files = [("images", ("x.png", image.read_bytes())), ("masks", ("x.tif", mask.read_bytes()))]
    r = _client(live).post("/api/projects/import", data={"format": "labels"}, files=files)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    too_big = [d for d in detail if "1,000,000 pixels" in d["reason"]]
    expected = {"image": ["images"], "mask": ["masks"], "both": ["images", "masks"]}[bad]
    assert [d["field"] for d in too_big] == expected, detail
    for d in too_big:
        assert f"{d['field']}/x." in d["reason"] and ("1001x1000" in d["reason"] or "1000x1001" in d["reason"]), d
        assert "/tmp" not in d["reason"] and str(live.data_dir) not in d["reason"]
    assert state_of(live.data_dir) == before


def test_a_65536_square_tiff_is_refused_at_once_with_its_size(live: Live, tmp_path):
    big = tiled_tiff(tmp_path / "huge.tif")
    mask = write_tiff(tmp_path / "m.tif", label_scene())
    before = state_of(live.data_dir)
    client = _client(live)
    r = client.post("/api/projects/import", data={"format": "labels"},
                    files=[("images", ("huge.tif", big.read_bytes())), ("masks", ("huge.tif", mask.read_bytes()))])
    assert r.status_code == 422
    reasons = " ".join(d["reason"] for d in r.json()["detail"])
    assert "images/huge.tif is 65536x65536 (4,294,967,296 pixels)" in reasons, reasons
    assert state_of(live.data_dir) == before


def test_coco_and_dsb_images_and_masks_are_held_to_the_budget(live: Live, tmp_path):
    import json

    big = zero_png(tmp_path / "big.png", 1100, 1000)
    coco = {"images": [{"id": 1, "file_name": "big.png", "width": 1100, "height": 1000}],
            "annotations": [], "categories": [{"id": 1, "name": "cell"}]}
    client = _client(live)
    before = state_of(live.data_dir)
    r = client.post("/api/projects/import", data={"format": "coco"},
                    files=[("annotations", ("a.json", json.dumps(coco).encode())), ("images", ("big.png", big.read_bytes()))])
    assert r.status_code == 422 and "images/big.png is 1100x1000" in r.text, r.text
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("s/a/images/a.png", (tmp_path / "ok.png").read_bytes() if (tmp_path / "ok.png").exists()
                    else write_png(tmp_path / "ok.png", np.full((40, 50), 90, np.uint8)).read_bytes())
        zf.writestr("s/a/masks/m1.png", big.read_bytes())
    r = client.post("/api/projects/import", data={"format": "dsb"}, files=[("archive", ("dsb.zip", buf.getvalue()))])
    assert r.status_code == 422 and "m1.png is 1100x1000" in r.text, r.text
    assert state_of(live.data_dir) == before


def test_the_cli_refuses_an_image_over_its_budget_and_exits_2(tmp_path):
    image = write_png(tmp_path / "a.png", np.zeros((100, 120), np.uint8))
    mask = write_tiff(tmp_path / "a_lab.tif", np.zeros((100, 120), np.uint16))
    cmd = [sys.executable, "-m", "server", "import", "labels", "--data-dir", str(tmp_path / "d"),
           "--pair", str(image), str(mask)]
    done = subprocess.run(cmd + ["--max-image-pixels", "11_999"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "120x100 (12,000 pixels)" in done.stderr and "11,999 pixels" in done.stderr
    assert not (tmp_path / "d").exists()
    done = subprocess.run(cmd + ["--max-image-pixels", "12000", "--dry-run"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr


MEASURE = r"""
import sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from server.imports import load_label_images, load_patch_labels
import numpy, scipy.ndimage, shapely, skimage.measure, pycocotools.mask, tifffile, PIL.Image
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
before = status("VmRSS")
loader = load_patch_labels if sys.argv[3] == "patches" else load_label_images
plan = loader([(sys.argv[1], sys.argv[2])], max_image_pixels=int(sys.argv[4]))
print(plan.object_count, status("VmHWM") - before)
"""


@pytest.mark.parametrize("kind", ["labels", "large-labels", "patches"])
def test_an_import_just_under_the_budget_stays_within_the_stated_memory(tmp_path, kind):
    """In a child process: peak RSS growth (VmHWM after resetting it) of an import of an
    image and its label image of 3,000 x 2,000 pixels with a budget of exactly that."""
    height, width = 2000, 3000
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (height, width), dtype=np.uint8)
    labels = np.zeros((height, width), np.uint32)
    yy, xx = np.ogrid[:height, :width]
    k = 0
    for cy in range(40, height, 120):
        for cx in range(40, width, 120):
            k += 1
            labels[(yy - cy) ** 2 + (xx - cx) ** 2 < 45 ** 2] = k
    tifffile.imwrite(tmp_path / "img.tif", image, compression="zlib")
    if kind == "patches":
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[..., 0], rgb[..., 1] = (labels % 7 + 1) * (labels > 0), labels // 7
        Image.fromarray(rgb).save(tmp_path / "lab.png")
        mask = tmp_path / "lab.png"
    else:
        mask = write_tiff(tmp_path / "lab.tif", labels * 1_000_003 if kind == "large-labels" else labels.astype(np.uint16))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "img.tif"), str(mask), kind,
                           str(height * width)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    objects, peak = (int(v) for v in done.stdout.split())
    assert objects == k
    assert peak <= IMPORT_BYTES_PER_PIXEL * height * width, f"{peak / 1e6:.0f} MB for {height * width / 1e6} MP"
