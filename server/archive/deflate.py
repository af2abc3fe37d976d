"""Members deflated ahead of time, outside ``ZipFile``, for ``ZipSink.add_deflated``:
``deflate_file`` (a finished file, in the metrics process) and ``ThreadDeflater`` (a stream
deflated on a thread of its own while its producer goes on). Both make exactly the stream
``ZipFile``'s ``ZIP_DEFLATED`` compressor makes (zlib's default level, raw deflate), described
by a ``Deflated``. Why members are deflated elsewhere: ``server/DECISIONS.md``, "R5 (members
deflated elsewhere)".
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import tempfile
import zlib
from dataclasses import dataclass
from typing import Callable, Optional

from server.archive.thread_feed import ThreadFeed

# Bytes per read of a file (deflating it, or copying it into the zip). Deflating 256 KiB of
# incompressible data takes a few ms, so a check between chunks sees a cancel in time.
CHUNK = 256 << 10


@dataclass(frozen=True)
class Deflated:
    """A member's data deflated ahead of time, outside the zip: ``path`` holds
    the raw deflate stream (RFC 1951, what a zip entry of method 8 holds) made with zlib's
    default level, exactly as ``ZipFile``'s ``ZIP_DEFLATED`` compressor makes it; ``crc``
    (CRC-32 of the data), ``size`` and ``sha256`` describe the uncompressed data,
    ``compressed_size`` the stream (bytes)."""

    path: str
    crc: int
    size: int
    compressed_size: int
    sha256: str


def zip_compressor():
    """A raw deflate compressor exactly as ``ZipFile``'s ``ZIP_DEFLATED`` makes one (zlib's
    default level, no zlib header), so a stream deflated elsewhere is the one it would write."""
    return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)


def deflate_file(source: str, dest: str) -> Deflated:
    """Deflate the file ``source`` into ``dest`` (created or replaced) for ``ZipSink.add_deflated``.
    Raises ``OSError`` if either file cannot be read or written."""
    compressor = zip_compressor()
    crc, size, written, sha = 0, 0, 0, hashlib.sha256()
    with open(source, "rb") as src, open(dest, "wb") as out:
        while chunk := src.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            sha.update(chunk)
            size += len(chunk)
            written += out.write(compressor.compress(chunk))
        written += out.write(compressor.flush())
    return Deflated(dest, crc, size, written, sha.hexdigest())


# Bytes handed to the deflating thread at a time, and how many of them may wait (each
# hand-over costs the thread a wait for the GIL, so pieces are large: bench/README.md, P4).
THREAD_CHUNK = 256 << 10
_THREAD_QUEUE = 2


class ThreadDeflater(io.RawIOBase):
    """A binary stream whose bytes are deflated on a thread of its own (zlib's default level,
    as ``ZIP_DEFLATED``) into a temporary file in ``tmpdir``, for ``ZipSink.add_deflated``:
    zlib releases the GIL, so the deflating runs on another core while the writer goes on
    producing the member. The CRC-32 is computed here, in the writer's thread (cheap).
    ``finish(size, sha256)`` waits for the thread and returns the ``Deflated``; ``abort()``
    stops it and removes the file. At most ``(_THREAD_QUEUE + 2) * THREAD_CHUNK`` bytes wait in
    memory. Raises the thread's error (an ``OSError`` for a full disk) from ``write`` or
    ``finish``; ``OSError`` from the constructor if the file or the thread cannot be made."""

    def __init__(self, tmpdir: Optional[str] = None) -> None:
        super().__init__()
        fd, self.path = tempfile.mkstemp(prefix="member-", suffix=".deflate", dir=tmpdir)
        self._out = os.fdopen(fd, "wb", buffering=0)
        self._pending = bytearray()
        self._crc = 0
        self._compressed = 0
        try:
            self._feed = ThreadFeed(self._run, "zip-deflate", _THREAD_QUEUE, "the deflating thread has ended")
        except BaseException:
            self._out.close()
            os.remove(self.path)
            raise

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self._crc = zlib.crc32(view, self._crc)
        self._pending += view
        if len(self._pending) >= THREAD_CHUNK:
            self._hand_pending()
        return len(view)

    def finish(self, size: int, sha256: str) -> Deflated:
        """Deflate what is left, wait for the thread; the member's ``Deflated`` (``size`` and
        ``sha256`` of the data, as the caller counted them)."""
        if self._pending:
            self._hand_pending()
        self._feed.finish(None)
        self._out.close()
        return Deflated(self.path, self._crc, size, self._compressed, sha256)

    def abort(self) -> None:
        """Stop the thread and remove the file (nothing is left)."""
        self._feed.abort(_STOP)
        try:
            self._out.close()
            os.remove(self.path)
        except OSError:
            pass  # gone already, or not removable: not worth replacing the error that led here

    def _hand_pending(self) -> None:
        chunk = bytes(self._pending)
        self._pending.clear()
        self._feed.put(chunk)

    def _run(self, take: Callable[[], Optional[bytes]]) -> None:
        compressor = zip_compressor()
        while (chunk := take()) is not None:
            if chunk is _STOP:
                return
            self._write_all(compressor.compress(chunk))
        self._write_all(compressor.flush())

    def _write_all(self, data: bytes) -> None:
        # A raw file may take part of a write (a disk filling up): the rest must follow, or
        # the stream would be cut short while its size still matched the file.
        view = memoryview(data)
        while view:
            written = self._out.write(view)
            if not written:
                raise OSError(errno.EIO, "the temporary file of a member took no bytes")
            view = view[written:]
            self._compressed += written


_STOP = object()  # makes a ThreadDeflater's thread give up its member

