"""A stored image can never make another route fail (issue 16, item 1): images stored before
the pixel budget was this low, unreadable files and sizes nobody can draw get a placeholder
thumbnail and no overlay, with a warning, while everything else is exported; thumbnails and
overlays of an image just under the budget stay within the stated memory (child process)."""
from __future__ import annotations

import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import tifffile
from PIL import Image

from server import accounts
from server.domain import ImageRecord, ProjectRecord, SegObject
from server.projects import persist_project
from tests.service.conftest import Live, start_live

ROOT = Path(__file__).resolve().parents[2]
WORK_BYTES_PER_PIXEL = 32
"""The stated bound (server/DECISIONS.md, "pixel budget"): a thumbnail or an overlay holds
at most this many bytes per pixel of its image on top of what the process held before."""
DECODE_FACTOR = 3
"""...and decoding alone at most this many times the decoded array."""


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_stored_images_over_the_budget_or_broken_get_placeholders_and_are_skipped_in_exports(tmp_path):
    live = start_live(tmp_path / "data", max_image_pixels=1_000_000)
    try:
        square = [[[(4.0, 4.0), (30.0, 4.0), (30.0, 30.0), (4.0, 30.0)]]]
        images = [ImageRecord(1, "ok.png", 64, 48, "", [SegObject(1, "cell", square)]),
                  ImageRecord(2, "big.png", 1100, 1000, "", [SegObject(1, "cell", square)]),
                  ImageRecord(3, "broken.png", 64, 48, "", [SegObject(1, "cell", square)]),
                  ImageRecord(4, "vast.png", 65536, 65536, "", [SegObject(1, "cell", square)])]
        sources = [_png(np.full((48, 64), 70, np.uint8)), _png(np.zeros((1000, 1100), np.uint8)),
                   b"this is not an image", _png(np.zeros((8, 8), np.uint8))]
        alice = live.new_user()
        project_id = persist_project(live.app.state.db, live.app.state.files_root,
                                     ProjectRecord(0, "stored earlier", ["cell"], None, images=images), sources,
                                     owner_id=accounts.user_id(live.app.state.db, alice.username))
        detail = alice.http.get(f"/api/projects/{project_id}").json()
        for image in detail["images"]:
            r = alice.http.get(f"/api/projects/{project_id}/images/{image['id']}/thumbnail")
            assert r.status_code == 200 and r.headers["content-type"] == "image/png", (image, r.status_code)
            Image.open(io.BytesIO(r.content)).verify()
        r = alice.start({"annotation_formats": ["coco"], "metrics_formats": ["csv"], "include_images": True,
                         "include_visualizations": True}, project_id=project_id)
        assert r.status_code == 202, r.text
        job = alice.wait_status(r.json()["id"], {"completed", "failed"}, timeout=120)
        assert job["status"] == "completed", job
        warnings = " ".join(job["warnings"])
        assert "'big.png'" in warnings and "1100x1000" in warnings and "1,000,000 pixels" in warnings, warnings
        assert "'vast.png'" in warnings and "65536x65536" in warnings, warnings
        archive = alice.http.get(f"/api/exports/{job['id']}/download")
        with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
            overlays = sorted(n for n in zf.namelist() if n.startswith("visualizations/"))
            assert overlays == ["visualizations/broken_overlay.png", "visualizations/ok_overlay.png"], overlays
            assert {"images/ok.png", "images/big.png", "images/broken.png"} <= set(zf.namelist())
    finally:
        live.stop()


MEASURE = r"""
import io, sys
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
def peak_of(work):
    open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
    before = status("VmRSS")
    result = work()
    return status("VmHWM") - before, result
from app.models import VisualizationOptions
from server.archive.overlay import render_overlay, write_overlay_png
from server.domain import ImageRecord, SegObject
from server.imaging import preview_png, read_image
path, warm, height, width = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
budget = height * width  # just under it: exactly at the limit
style = VisualizationOptions(show_numbers=True, opacity=0.5)
objects = [SegObject(k, "c", [[[(x, y), (x + 30, y), (x + 30, y + 30), (x, y + 30)]]])
           for k, (x, y) in enumerate(((x, y) for x in range(10, width - 40, 100) for y in range(10, height - 40, 100)), 1)]
def overlay(source, h, w, objs):
    picture = render_overlay(ImageRecord(1, "i", w, h, source, objs), style, source, max_pixels=budget)
    write_overlay_png(picture, io.BytesIO())
preview_png(read_image(warm), 256); overlay(warm, 48, 64, objects[:2])  # every module and codec loaded
decode, pixels = peak_of(lambda: read_image(path, max_pixels=budget))
del pixels
thumb, _ = peak_of(lambda: preview_png(read_image(path, max_pixels=budget), 256))
drawn, _ = peak_of(lambda: overlay(path, height, width, objects))
print(decode, thumb, drawn)
"""


def test_decoding_a_thumbnail_and_an_overlay_just_under_the_budget_stay_within_the_stated_memory(tmp_path):
    height, width = 2000, 3000
    image = np.random.default_rng(5).integers(0, 4000, (height, width), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "img.tif", image, compression="zlib")
    tifffile.imwrite(tmp_path / "warm.tif", image[:48, :64], compression="zlib")
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "img.tif"), str(tmp_path / "warm.tif"),
                           str(height), str(width)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    decode, thumb, drawn = (int(v) for v in done.stdout.split())
    pixels = height * width
    assert decode <= DECODE_FACTOR * image.nbytes + 2**20, f"decoding: {decode / image.nbytes:.1f}x the array"
    assert thumb <= WORK_BYTES_PER_PIXEL * pixels, f"thumbnail: {thumb / pixels:.1f} bytes per pixel"
    assert drawn <= WORK_BYTES_PER_PIXEL * pixels, f"overlay: {drawn / pixels:.1f} bytes per pixel"
