"""The one place that uses ``zipfile``'s private internals: appending an entry whose data was
compressed elsewhere.

``zipfile`` has no public call for a stream compressed outside it. ``append_compressed`` does
what ``ZipFile.open(name, "w")`` and its writer's ``close`` do, as read in CPython's
``Lib/zipfile`` (``zipfile/__init__.py`` from 3.12 on) of the versions in ``READ_FOR``: under
the zip's lock, refuse while a member is open (``_writing``) or when the file is not seekable
(``_seekable``), check the entry (``_writecheck``), write the local header with the final
CRC and sizes at ``start_dir``, the data after it, move ``start_dir`` past it, mark the zip
modified (``_didModify``) and list the entry (``filelist``, ``NameToInfo``). A Python outside
``READ_FOR`` must be read again before it is added (``tests/archive/test_archive_zip_internals.py``
fails until then).
"""
from __future__ import annotations

import zipfile
from typing import Callable

from server.archive.deflate import CHUNK

READ_FOR = ((3, 11), (3, 12), (3, 13))
PRIVATE_NAMES = ("_lock", "_writing", "_seekable", "_writecheck", "_didModify", "start_dir", "fp")


def append_compressed(zf: zipfile.ZipFile, info: zipfile.ZipInfo, data_path: str,
                      on_chunk: Callable[[int], None]) -> None:
    """Append the entry ``info`` to ``zf`` (open for writing) with the compressed data held in
    the file ``data_path``, copied as it is in ``CHUNK`` pieces; ``on_chunk(bytes copied so
    far)`` after each (it may raise to cancel). ``info`` must carry the final
    ``compress_type``, ``CRC``, ``file_size`` and ``compress_size``; ZIP64 headers are used
    when a size passes ``zipfile.ZIP64_LIMIT``.

    The entry is listed only once its whole data is there: whatever is raised in between
    (a cancel, a write error) truncates the file at the entry's header, so ``ZipFile.close``
    writes the central directory there and the zip is valid without it. Raises
    ``ValueError`` while another member is open, for a zip written to an unseekable stream,
    or when ``data_path`` does not hold ``info.compress_size`` bytes; ``OSError`` from reading
    or writing."""
    zip64 = info.file_size > zipfile.ZIP64_LIMIT or info.compress_size > zipfile.ZIP64_LIMIT
    with zf._lock:
        if zf._writing:
            raise ValueError(f"{info.filename}: another member of the zip is still open")
        if not zf._seekable:
            raise ValueError(f"{info.filename}: the zip is not written to a seekable file")
        zf._writecheck(info)
        zf.fp.seek(zf.start_dir)
        info.header_offset = zf.fp.tell()
        zf._didModify = True
        try:
            zf.fp.write(info.FileHeader(zip64))
            copied = 0
            with open(data_path, "rb") as src:
                while chunk := src.read(CHUNK):
                    zf.fp.write(chunk)
                    copied += len(chunk)
                    on_chunk(copied)
            if copied != info.compress_size:
                raise ValueError(f"{info.filename}: {copied} bytes of compressed data, {info.compress_size} announced")
        except BaseException:
            zf.fp.seek(info.header_offset)
            zf.fp.truncate()  # the directory goes here, and nothing of the member may follow it
            raise
        zf.start_dir = zf.fp.tell()
        zf.filelist.append(info)
        zf.NameToInfo[info.filename] = info
