"""Reading microscopy images and making previews (server side, CPython only).

TIFF goes through tifffile (scientific TIFFs: 16-bit, 12-bit-in-16, float, multi-page);
everything else (PNG, JPEG, BMP, ...) through Pillow. Arrays keep the file's own data type.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import tifffile
from PIL import Image

from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS, ImageHeaderError, check_budget

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


class ImageReadError(ValueError):
    """The data is not an image this module can decode (``str(err)`` says why)."""


def _head(source: Source) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source[:4])
    with open(source, "rb") as fh:
        return fh.read(4)


def _is_tiff(source: Source) -> bool:
    return _head(source) in _TIFF_MAGIC


def _as_file(source: Source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return source


class _CheckedReader(io.RawIOBase):
    """A seekable binary file whose every read first calls ``check()``: decoders read in
    blocks (Pillow 64 KiB at a time), so a cancel is seen while a big image is decoded.
    ``raised`` keeps what ``check`` raised, so that ``read_image`` can tell it apart from the
    decoder's own errors (some decoders wrap the errors of their reads)."""

    def __init__(self, raw: io.RawIOBase, check: Callable[[], None]) -> None:
        super().__init__()
        self.raw = raw
        self.check = check
        self.raised: Optional[BaseException] = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            self.check()
        except BaseException as exc:
            self.raised = exc
            raise
        return self.raw.readinto(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def close(self) -> None:
        self.raw.close()
        super().close()


def read_image(source: Source, check: Optional[Callable[[], None]] = None,
               max_pixels: Optional[int] = None) -> np.ndarray:
    """Decode an image file (path or the file's bytes) into a numpy array.

    Shapes: ``(H, W)`` for grey or label data (uint8, uint16, int32/uint32 or float as stored;
    a palette PNG gives its palette indices; 1-bit gives bool), ``(H, W, 3)`` for RGB,
    ``(H, W, 4)`` for RGBA (uint8 or uint16). For a multi-page/multi-plane TIFF only the
    first 2-D plane (or first 2-D RGB(A) plane) is returned.

    ``check`` (optional, no arguments) is called before every block the decoder reads from the
    file; whatever it raises (a cancellation) propagates unchanged and ends the decoding.

    The header is checked against the pixel budget first (``max_pixels``, default 100
    megapixels; ``server.image_budget``): nothing is decoded from an image over it.

    Raises ``FileNotFoundError`` for a missing path, ``server.image_budget.ImageTooLarge``
    (a ``ValueError``) for an image over the budget and ``ImageReadError`` for anything that
    is not a decodable image.
    """
    if not isinstance(source, (bytes, bytearray, memoryview)) and not Path(source).is_file():
        raise FileNotFoundError(f"no such image file: {os.fspath(source)}")
    try:
        check_budget(source, max_pixels or DEFAULT_MAX_IMAGE_PIXELS)
    except ImageHeaderError as exc:
        raise _read_error(source, exc.__cause__ or exc) from exc
    if check is None:
        return _decode(source, _as_file(source))
    raw = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb", buffering=0)
    reader = _CheckedReader(raw, check)
    try:
        with io.BufferedReader(reader, buffer_size=64 << 10) as fh:
            return _decode(source, fh)
    except ImageReadError:
        if reader.raised is not None:
            raise reader.raised from None
        raise


def _decode(source: Source, fh) -> np.ndarray:
    try:
        if _is_tiff(source):
            with tifffile.TiffFile(fh) as tif:
                arr = tif.pages[0].asarray()
            return _first_plane(np.asarray(arr))
        with Image.open(fh) as img:
            img.load()
            return _pillow_to_array(img)
    except FileNotFoundError:
        raise
    except Exception as exc:  # decoders raise many kinds of errors on corrupt data
        raise _read_error(source, exc) from exc


def image_size(source: Source) -> tuple[int, int]:
    """``(width, height)`` in pixels, read from the file header where the format allows.

    Raises ``FileNotFoundError`` or ``ImageReadError`` like :func:`read_image`.
    """
    if not isinstance(source, (bytes, bytearray, memoryview)) and not Path(source).is_file():
        raise FileNotFoundError(f"no such image file: {os.fspath(source)}")
    try:
        if _is_tiff(source):
            with tifffile.TiffFile(_as_file(source)) as tif:
                page = tif.pages[0]
                return int(page.imagewidth), int(page.imagelength)
        with Image.open(_as_file(source)) as img:
            return int(img.width), int(img.height)
    except FileNotFoundError:
        raise
    except Exception as exc:  # decoders raise many kinds of errors on corrupt data
        raise _read_error(source, exc) from exc


def _read_error(source: Source, exc: Exception) -> ImageReadError:
    text = str(exc)
    if not isinstance(source, (bytes, bytearray, memoryview)):
        text = text.replace(repr(os.fspath(source)), "").replace(os.fspath(source), "").strip(" :")
    return ImageReadError(f"not a readable image ({exc.__class__.__name__}{': ' + text if text else ''})")


def _first_plane(arr: np.ndarray) -> np.ndarray:
    # Keep a trailing colour axis of 3 or 4; drop leading page/channel/z axes.
    while arr.ndim > 3 or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        arr = arr[0]
    if arr.ndim < 2:
        raise ImageReadError(f"image has {arr.ndim} dimension(s), expected 2 or 3")
    return arr


def _pillow_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(img).astype(np.uint16, copy=False)
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(img.convert("RGB"))
    if mode == "LA":
        return np.asarray(img)[..., 0]
    if mode == "PA":
        return np.asarray(img)[..., 0]
    return np.asarray(img)


def to_grey_or_rgb_float(arr: np.ndarray) -> np.ndarray:
    """Drop an alpha channel; return float64 ``(H, W)`` or ``(H, W, 3)`` (no scaling)."""
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 4:
        a = a[..., :3]
    if a.ndim == 3 and a.shape[-1] == 3 and np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(
        a[..., 0], a[..., 2]
    ):
        a = a[..., 0]  # grey stored as RGB (common for fluorescence PNGs)
    return a.astype(np.float64)


def contrast_stretch(arr: np.ndarray, low_pct: float = 1.0, high_pct: float = 99.8) -> np.ndarray:
    """Map the ``low_pct``..``high_pct`` percentile range of ``arr`` (all channels together, so
    colours keep their balance) linearly onto 0..255 and return uint8 of the same shape minus
    any alpha. A flat image becomes all 0. Dim fluorescence (e.g. 12-bit data in 16 bits, or
    8-bit data with a max of 60) becomes visible this way."""
    a = to_grey_or_rgb_float(arr)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [low_pct, high_pct])
    if hi <= lo:
        hi = float(finite.max())
        if hi <= lo:
            return np.zeros(a.shape, dtype=np.uint8)
    out = (np.nan_to_num(a, nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def preview_png(arr: np.ndarray, max_side: int = 256) -> bytes:
    """An 8-bit PNG thumbnail of ``arr`` (any shape :func:`read_image` returns): sampled down
    to every step-th pixel where it is over twice ``max_side``, contrast stretched with
    :func:`contrast_stretch` (percentiles 1 and 99.8), then shrunk so that its
    longer side is at most ``max_side`` pixels (aspect kept; never enlarged). Raises
    ``ValueError`` if ``max_side < 1``."""
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    # Every step-th pixel of a big image first (at most twice the thumbnail's side is left
    # for the Lanczos filter): the stretch then works on a few MB, whatever the image's size.
    step = max(1, -(-max(arr.shape[:2]) // (2 * max_side)))
    img = Image.fromarray(contrast_stretch(arr[::step, ::step]))
    img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return encode_png(np.asarray(img))


def encode_png(arr: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 ``(H, W)``/``(H, W, 3)``/``(H, W, 4)`` or uint16 ``(H, W)`` array.
    Raises ``ValueError`` for other dtypes/shapes."""
    a = np.asarray(arr)
    ok = (a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] in (3, 4)))) or (
        a.dtype == np.uint16 and a.ndim == 2
    )
    if not ok:
        raise ValueError(f"cannot encode {a.dtype} array of shape {a.shape} as PNG")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()
