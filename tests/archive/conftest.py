"""Fixtures of the archive-writer tests: small synthetic projects with image files, and the real
microscopy data of ``shared/data/cells`` as a ProjectRecord (see archive_helpers)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

# The test modules import archive_helpers from this folder, also under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from archive_helpers import load_real_images, square  # noqa: E402
from server.domain import ImageRecord, ProjectRecord, SegObject  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cells_dir() -> Path:
    path = (REPO / ".." / "shared" / "data" / "cells").resolve()
    assert (path / "SOURCES.md").is_file(), f"real test data missing at {path}"
    return path


@pytest.fixture(scope="session")
def real_project(cells_dir: Path) -> ProjectRecord:
    """All 17 real images and their 1,122 annotated objects (SOURCES.md). Both StarDist images
    are called ``img2d.tif``: a real duplicate file name."""
    return ProjectRecord(1, "Real nuclei", ["nucleus"], None, images=load_real_images(cells_dir))


@pytest.fixture
def synthetic_project(tmp_path: Path) -> ProjectRecord:
    """Four small images (dim 8-bit grey PNG, 16-bit TIFF, RGB PNG under the same file name as
    the first, RGBA PNG without objects) with: a plain square, a square with a hole, a two-part
    object, a part with two holes, an object with an island in its hole, an object crossing the
    image border, a triangle, and a degenerate object (two points)."""
    rng = np.random.default_rng(7)
    files = {
        "grey.png": (rng.integers(0, 40, (48, 64))).astype(np.uint8),
        "deep.tif": (rng.integers(100, 3000, (48, 64))).astype(np.uint16),
        "rgb.png": (rng.integers(0, 256, (48, 64, 3))).astype(np.uint8),
        "rgba.png": np.dstack([rng.integers(0, 30, (48, 64, 3)), np.full((48, 64), 255)]).astype(np.uint8),
    }
    paths = {}
    for name, arr in files.items():
        path = tmp_path / name
        if name.endswith(".tif"):
            tifffile.imwrite(path, arr)
        else:
            Image.fromarray(arr).save(path)
        paths[name] = str(path)
    objects = [
        SegObject(1, "cell", [[square(2, 2, 10)]]),
        SegObject(2, "cell", [[square(20, 2, 16), square(24, 6, 6)]]),
        SegObject(3, "nucleus", [[square(2, 20, 5)], [square(10, 20, 5)]]),
        SegObject(4, "cell", [[square(40, 2, 20), square(42, 4, 5), square(52, 12, 6)]]),
        SegObject(5, "cell", [[square(20, 25, 20), square(24, 29, 12)], [square(27, 32, 6)]]),
        SegObject(6, "cell", [[square(55, 40, 20)]]),
        # Vertices off the 0.2 px grid that pycocotools rounds to, so 1e-6 rounding in YOLO
        # cannot flip a row of sub-pixels of this small triangle.
        SegObject(7, "nucleus", [[[(3.37, 30.13), (14.71, 33.22), (6.13, 44.41)]]]),
        SegObject(8, "cell", [[[(1.0, 1.0), (2.0, 2.0)]]]),
    ]
    images = [
        ImageRecord(10, "cells.png", 64, 48, paths["grey.png"], objects),
        ImageRecord(11, "deep.tif", 64, 48, paths["deep.tif"], objects[:3]),
        ImageRecord(12, "cells.png", 64, 48, paths["rgb.png"], [objects[1], objects[4]]),
        ImageRecord(13, "empty.png", 64, 48, paths["rgba.png"], []),
    ]
    return ProjectRecord(5, "Synthetic", ["cell", "nucleus"], 0.5, description="test", images=images)
