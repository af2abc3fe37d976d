"""Redraw the overlay examples of README.md (``docs/overlay-*.png``) from the real data.

    .venv/bin/python scripts/docs_overlays.py

Needs the project's ``shared/data/cells`` beside the repository (as the tests do). Imports two
images with the hub's importers and draws their overlays with the default options, as an
export does. Run it by hand after a change to the overlays; the test suite never writes here.
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.models import VisualizationOptions  # noqa: E402
from server.archive.overlay import render_overlay  # noqa: E402
from server.imports import load_dsb_folders, load_label_images, load_patch_labels  # noqa: E402
from server.imports.labels import pair_by_stem  # noqa: E402

CELLS = REPO / ".." / "shared" / "data" / "cells"
EXAMPLES = {
    # 231 touching U2OS nuclei (16-bit), one with a hole: dense numbers and leader lines.
    "overlay-bbbc039-dense.png": ("bbbc039", "IXMtest_K12_s7"),
    # 125 nuclei of the StarDist example (DSB 2018 data, 16-bit), one of them in two parts.
    "overlay-stardist-dsb2018.png": ("stardist", "img2d.tif"),
}


def _image(kind: str, prefix: str):
    if kind == "stardist":
        root = CELLS / "stardist_dsb2018" / "stardist" / "data" / "images"
        return load_label_images([(root / "img2d.tif", root / "mask2d.tif")]).images[0]
    if kind == "bbbc039":
        pairs = [p for p in pair_by_stem(CELLS / "bbbc039_u2os/images", CELLS / "bbbc039_u2os/masks")
                 if p[0].name.startswith(prefix)]
        return load_patch_labels(pairs).images[0]
    root = CELLS / "bbbc038_dsb2018" / "stage1_train"
    plan = load_dsb_folders(root)
    return next(im for im in plan.images if im.file_name.startswith(prefix))


def main() -> int:
    out = REPO / "docs"
    out.mkdir(exist_ok=True)
    for name, (kind, prefix) in EXAMPLES.items():
        image = _image(kind, prefix)
        notes: list[str] = []
        render_overlay(image, VisualizationOptions(), image.path, notes=notes).save(out / name, optimize=True)
        print(f"docs/{name}: {image.file_name}, {len(image.objects)} objects" + (f"; {notes}" if notes else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
