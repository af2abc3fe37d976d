"""An image array as 8-bit RGB for display (the overlays), contrast-stretched where needed.

8-bit data is kept as it is unless dim (its 99.5th percentile below 128, as in fluorescence
PNGs with a maximum of 60); dim 8-bit data and anything deeper (16-bit, 32-bit, float) is
stretched linearly from the 0.5th to the 99.9th percentile of all channels together (one
mapping for R, G and B, so colours keep their hue; 99.9 so that sparse bright nuclei keep their
texture instead of saturating). The stretched range is at least ``range_floor``: 1/8 of the
8-bit scale (32 levels) for 8-bit data, 256 levels for deeper integers (1/16 of a 12-bit
camera's range), 1/8 for floats within 0..1. So an empty or flat image (background noise of a
few dozen levels) stays dark and flat instead of being stretched into a texture.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image

_DIM_LIMIT = 128
_SAMPLE = 1_000_000  # pixels sampled for the percentiles: enough for a stable stretch


def _never() -> None:
    """The default ``check``: nothing cancels."""


def range_floor(dtype: np.dtype, high: float) -> float:
    """The smallest display range (in the data's units) a stretch of data of ``dtype`` may use;
    ``high`` is the data's upper percentile (only floats depend on it)."""
    if dtype == np.uint8:
        return 32.0
    if np.issubdtype(dtype, np.integer):
        return 256.0
    return 0.125 if high <= 1.0 else 0.0


def stretch(values: np.ndarray, floor: float = 0.0, check: Callable[[], None] = _never) -> np.ndarray:
    """``values`` (any shape, any real dtype) mapped linearly to uint8: the 0.5th percentile to
    0, the 99.9th (or the 0.5th plus ``floor``, whichever is higher; at least plus 1) to 255,
    rounded and clipped. ``check()`` is called between steps (it may raise to cancel)."""
    flat = values.reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    lo, hi = np.percentile(flat[::step].astype(np.float64), [0.5, 99.9])
    hi = max(hi, lo + floor)
    if hi <= lo:
        hi = lo + 1.0
    check()
    # In place, in steps: a big image costs a few ms per step, and a cancel is seen in between.
    out = values.astype(np.float64)
    out -= lo
    out *= 255.0 / (hi - lo)
    check()
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def display_rgb(arr: np.ndarray, check: Callable[[], None] = _never) -> Image.Image:
    """An 8-bit RGB Pillow image of an image array as ``server.imaging.read_image`` returns it:
    ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha dropped), of any dtype
    (bool, uint8, uint16, int, float). See the module docstring for when and how it is
    contrast-stretched. ``check()`` is called between the steps (it may raise to cancel).
    Raises ``ValueError`` for another shape."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"cannot display an array of shape {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        # Only floats can hold NaN or infinities; integers go to stretch as they are.
        data = np.nan_to_num(a.astype(np.float64)) if a.dtype.kind == "f" else a
        high = float(data.max()) if data.size else 0.0
        a = stretch(data, range_floor(a.dtype, high), check)
    elif a.size and np.percentile(a.reshape(-1)[:: max(1, a.size // _SAMPLE)], 99.5) < _DIM_LIMIT:
        check()
        a = stretch(a, range_floor(a.dtype, 255.0), check)
    check()
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(a), "RGB")
