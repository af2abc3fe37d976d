"""Small file writers and a label scene shared by the import tests (imported by name, as
pytest puts this folder on sys.path)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def write_png(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8 grey/RGB/RGBA or uint16 grey) as a PNG, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, format="PNG")
    return path


def write_tiff(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.asarray(array))
    return path


def label_scene(height: int = 40, width: int = 50) -> np.ndarray:
    """A small uint16 label image: a square (id 3), a ring with a hole (id 7), a 2-piece
    object (id 12), an object cut by the border (id 20) and a 6-pixel object (id 40)."""
    lab = np.zeros((height, width), np.uint16)
    lab[2:10, 2:10] = 3
    lab[12:24, 12:24] = 7
    lab[16:20, 16:20] = 0
    lab[2:6, 30:34] = 12
    lab[8:11, 36:40] = 12
    lab[30:40, 0:6] = 20
    lab[30:32, 40:43] = 40
    return lab
