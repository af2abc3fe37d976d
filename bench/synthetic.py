"""A synthetic project of any size, made fast (numpy), for the export benchmarks.

Not the demo's realism (``server.demo`` renders and blurs every image and takes ~0.1 s an
image): here every image is grey noise saved as a small 8-bit PNG, and its objects are
regular 16-gon "nuclei" on a grid, one in ten with a hole, so no two overlap and every
metric is defined. Deterministic for a given seed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from server.domain import ImageRecord, ProjectRecord, SegObject

VERTICES = 16
HOLE_EVERY = 10


def _grid(n_objects: int, size: int) -> tuple[int, float]:
    cols = int(np.ceil(np.sqrt(n_objects)))
    return cols, size / cols


def make_project(n_images: int, n_objects: int, folder: Path, size: int = 256, seed: int = 7,
                 distinct_files: int = 50) -> ProjectRecord:
    """A project of ``n_images`` images of ``size`` x ``size`` px, each with ``n_objects``
    objects (one category, ``nucleus``), pixel size 0.5 um. PNG files go to ``folder``
    (created); ``distinct_files`` different noise images are written and shared round-robin
    by the images (the exporter reads each image's file by path, so sharing changes only
    the disk space used). Raises ``ValueError`` if the objects do not fit (cells < 12 px)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    cols, cell = _grid(n_objects, size)
    if cell < 12:
        raise ValueError(f"{n_objects} objects do not fit in {size} px")
    paths = []
    for k in range(min(distinct_files, n_images)):
        path = folder / f"noise_{k:03d}.png"
        pixels = rng.integers(0, 256, (size, size), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(path, compress_level=1)
        paths.append(str(path))
    angles = np.linspace(0.0, 2.0 * np.pi, VERTICES, endpoint=False)
    unit = np.column_stack([np.cos(angles), np.sin(angles)])
    images = []
    for i in range(n_images):
        slots = np.arange(n_objects)
        centres = np.column_stack([(slots % cols + 0.5) * cell, (slots // cols + 0.5) * cell])
        centres += rng.uniform(-0.1, 0.1, centres.shape) * cell
        radii = rng.uniform(0.25, 0.4, n_objects) * cell
        rings = np.round(centres[:, None, :] + radii[:, None, None] * unit[None, :, :], 2)
        objects = []
        for j in range(n_objects):
            polygon = [[(float(x), float(y)) for x, y in rings[j]]]
            if j % HOLE_EVERY == 0:
                hole = np.round(centres[j] + 0.35 * radii[j] * unit[::-1], 2)
                polygon.append([(float(x), float(y)) for x, y in hole])
            objects.append(SegObject(id=j + 1, category="nucleus", polygons=[polygon]))
        images.append(ImageRecord(id=i + 1, file_name=f"img_{i:04d}.png", width=size, height=size,
                                  path=paths[i % len(paths)], objects=objects))
    return ProjectRecord(id=1, name="Benchmark: synthetic", categories=["nucleus"], pixel_size_um=0.5,
                         synthetic=True, description="Synthetic benchmark data (bench/synthetic.py).",
                         images=images)
