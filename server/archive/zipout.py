"""Streaming zip output with a SHA-256 and size per member, and overall progress reporting."""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Callable, Iterator, Optional

from server.archive.thread_feed import ThreadFeed

# Bytes per read when copying a file into the zip. Deflating 256 KiB of incompressible data
# takes a few ms, so a check between chunks sees a cancel long before 100 ms have passed.
CHUNK = 256 << 10
# A member's ``poll`` runs before each further POLL_BYTES written (and large writes are cut
# into slices of that size), so even one big write (an overlay PNG, an XLSX) stays cancellable.
POLL_BYTES = 64 << 10
Checkpoint = Callable[[str, float, str], None]
Poll = Callable[[], None]


class HashingWriter(io.RawIOBase):
    """A binary stream that forwards every byte to ``inner`` while hashing and counting them.
    Closing it leaves ``inner`` open.

    ``poll`` (optional, no arguments) is called before each further ``POLL_BYTES`` bytes are
    forwarded; whatever it raises (a cancellation) propagates out of ``write`` with the rest
    of that write not forwarded."""

    def __init__(self, inner: IO[bytes], poll: Optional[Poll] = None) -> None:
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0
        self.poll = poll
        self._unpolled = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.poll is None:
            self._forward(view)
            return len(view)
        for start in range(0, len(view), POLL_BYTES):
            piece = view[start:start + POLL_BYTES]
            if self._unpolled >= POLL_BYTES:
                self._unpolled = 0
                self.poll()
            self._forward(piece)
            self._unpolled += len(piece)
        return len(view)

    def _forward(self, view: memoryview) -> None:
        self.sha.update(view)
        self.inner.write(view)
        self.size += len(view)


_FILE_MODE = stat.S_IFREG | 0o644


@dataclass(frozen=True)
class Deflated:
    """A member's data deflated ahead of time, elsewhere (the metrics process): ``path`` holds
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


# Bytes handed to the deflating thread at a time: each hand-over costs that thread a few
# waits for the GIL (up to the 5 ms switch interval each while the producer runs Python), so
# pieces are large; at most _THREAD_QUEUE of them wait.
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


class ZipSink:
    """Writes members into an open ``ZipFile`` one at a time through ``ZipFile.open(name, "w")``
    (deflated; nothing is buffered beyond zlib's window) and records ``files[name] =
    {"sha256", "size"}`` (uncompressed) for each finished member. ``date_time`` is the zip
    timestamp of every member. ``poll`` (optional) is every member's ``HashingWriter`` poll:
    called every ``POLL_BYTES`` written, it may raise to cancel."""

    def __init__(self, zf: zipfile.ZipFile, date_time: tuple, poll: Optional[Poll] = None) -> None:
        self.zf = zf
        self.date_time = date_time
        self.poll = poll
        self.files: dict[str, dict] = {}

    @contextmanager
    def member(self, name: str, size_hint: int = 0, poll: Optional[Poll] = None) -> Iterator[HashingWriter]:
        """A binary stream into member ``name``; ``size_hint`` (bytes, if known) lets zipfile
        choose ZIP64 headers up front for members over 2 GiB. ``poll`` replaces the sink's
        own for this member."""
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _FILE_MODE << 16  # zipfile's default is rw------- (owner only)
        info.file_size = size_hint
        with self.zf.open(info, "w", force_zip64=size_hint > (1 << 30)) as raw:
            writer = HashingWriter(raw, poll if poll is not None else self.poll)
            yield writer
        self.files[name] = {"sha256": writer.sha.hexdigest(), "size": writer.size}

    @contextmanager
    def text_member(self, name: str, deflate_on_thread: bool = False,
                    tmpdir: Optional[str] = None) -> Iterator[io.TextIOWrapper]:
        """A UTF-8 text stream (``newline=""``: no newline translation) into member ``name``.
        ``deflate_on_thread``: deflated by a ``ThreadDeflater`` (into a temporary file in
        ``tmpdir``, then copied in by ``add_deflated``) while the caller produces the text:
        for big members whose producer is Python, so zlib runs on another core."""
        if not deflate_on_thread:
            with self.member(name) as raw:
                text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
                with _disarmed_on_error(raw):
                    yield text
                    text.flush()
                text.detach()
            return
        deflater = ThreadDeflater(tmpdir)
        try:
            writer = HashingWriter(deflater, self.poll)
            text = io.TextIOWrapper(writer, encoding="utf-8", newline="")
            with _disarmed_on_error(writer):
                yield text
                text.flush()
            text.detach()
            member = deflater.finish(writer.size, writer.sha.hexdigest())
            self.add_deflated(name, member, lambda _copied: self.poll() if self.poll else None)
        finally:
            deflater.abort()

    def write_text(self, name: str, text: str) -> None:
        """Member ``name`` with ``text`` as UTF-8."""
        with self.member(name) as raw:
            raw.write(text.encode("utf-8"))

    def add_deflated(self, name: str, member: Deflated, on_chunk: Callable[[int], None]) -> None:
        """Member ``name`` from data deflated ahead of time (``deflate_file``), its stream copied
        as it is in ``CHUNK`` pieces; ``on_chunk(bytes copied so far)`` after each (it may raise
        to cancel). The entry is the one ``member`` would get (same method, level, CRC, sizes),
        without deflating here.

        ``zipfile`` has no public call for a stream compressed elsewhere, so this does what
        ``ZipFile.open(name, "w")`` and its writer's ``close`` do (CPython 3.11-3.13): the
        local header with the final CRC and sizes, the data, then the entry in the central
        directory's list. The entry is listed only once the whole stream is there: a cancel in
        between leaves the zip without it (``ZipFile.close`` writes the directory from the
        member's start, and the partial member is cut off). Raises ``ValueError`` while another member
    is open, for a zip written to an unseekable stream, or if ``member.path`` does not hold
    ``compressed_size`` bytes; ``OSError`` from reading or writing."""
        zf = self.zf
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _FILE_MODE << 16
        info.file_size, info.compress_size, info.CRC = member.size, member.compressed_size, member.crc
        zip64 = member.size > zipfile.ZIP64_LIMIT or member.compressed_size > zipfile.ZIP64_LIMIT
        with zf._lock:
            if zf._writing:
                raise ValueError(f"{name}: another member of the zip is still open")
            if not zf._seekable:
                raise ValueError(f"{name}: the zip is not written to a seekable file")
            zf._writecheck(info)
            zf.fp.seek(zf.start_dir)
            info.header_offset = zf.fp.tell()
            zf._didModify = True
            try:
                zf.fp.write(info.FileHeader(zip64))
                copied = 0
                with open(member.path, "rb") as src:
                    while chunk := src.read(CHUNK):
                        zf.fp.write(chunk)
                        copied += len(chunk)
                        on_chunk(copied)
                if copied != member.compressed_size:
                    raise ValueError(f"{name}: {copied} bytes of deflated data, {member.compressed_size} announced")
            except BaseException:
                zf.fp.seek(info.header_offset)
                zf.fp.truncate()  # the directory goes here, and nothing of the member may follow it
                raise
            zf.start_dir = zf.fp.tell()
            zf.filelist.append(info)
            zf.NameToInfo[name] = info
        self.files[name] = {"sha256": member.sha256, "size": member.size}

    def copy_file(self, name: str, source: IO[bytes], on_chunk: Callable[[int], None], size_hint: int = 0) -> None:
        """Member ``name`` copied from the binary ``source`` in ``CHUNK`` pieces; ``on_chunk(bytes
        copied so far)`` after each piece (it may raise to cancel; the exception propagates).
        The sink's ``poll`` is not used here: ``on_chunk`` is this member's check."""
        with self.member(name, size_hint, poll=_no_poll) as raw:
            copied = 0
            while chunk := source.read(CHUNK):
                raw.write(chunk)
                copied += len(chunk)
                on_chunk(copied)


class _Discard(io.RawIOBase):
    """A stream that takes every byte and keeps none."""

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(memoryview(data))


@contextmanager
def _disarmed_on_error(writer: HashingWriter) -> Iterator[None]:
    """On an exception, cut ``writer`` off from its member and its poll: the text wrapper above
    it still holds unflushed text, which it writes when it is collected (from a finaliser, maybe
    after the job ended), and that must neither reach the member nor call the job's checkpoint."""
    try:
        yield
    except BaseException:
        writer.poll = None
        writer.inner = _Discard()
        raise


def _no_poll() -> None:
    """A poll that never cancels (``copy_file`` checks through its ``on_chunk`` instead)."""


class Progress:
    """Turns work units into the overall fraction passed to ``checkpoint(stage, fraction,
    message)``: ``report(stage, within, message)`` reports ``done + within`` of ``total`` units
    (capped at 1.0, and never below what was reported before); ``advance(units)`` moves
    ``done`` on once a step is finished; ``poll()`` repeats the last report unchanged, so that
    the checkpoint (the caller's cancellation check) also runs inside long steps."""

    def __init__(self, checkpoint: Checkpoint, total: float) -> None:
        self.checkpoint = checkpoint
        self.total = max(total, 1.0)
        self.done = 0.0
        self._last: Optional[tuple[str, float, str]] = None

    def report(self, stage: str, within: float, message: str) -> None:
        fraction = min(1.0, (self.done + within) / self.total)
        if self._last is not None:
            fraction = max(fraction, self._last[1])
        self._last = (stage, fraction, message)
        self.checkpoint(stage, fraction, message)

    def advance(self, units: float) -> None:
        self.done += units

    def poll(self) -> None:
        if self._last is not None:
            self.checkpoint(*self._last)
