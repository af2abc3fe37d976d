"""``ZipSink``: members streamed into an open zip one at a time, each with its SHA-256 and size.

A member is written through ``ZipFile.open(name, "w")`` as it is produced (``member``,
``text_member``, ``write_text``, ``copy_file``), or deflated ahead of time and copied in as
it is (``add_deflated``; ``text_member(deflate_on_thread=True)``). Every write passes a
``HashingWriter``, whose poll (the export's cancellation check) runs every ``POLL_BYTES``.
"""
from __future__ import annotations

import io
import stat
import zipfile
from contextlib import contextmanager
from typing import IO, Callable, Iterator, Optional

from server.archive.deflate import CHUNK, Deflated, ThreadDeflater
from server.archive.hashing_writer import POLL_BYTES, HashingWriter
from server.archive.progress import Poll
from server.archive.zip_internals import append_compressed

__all__ = ["CHUNK", "POLL_BYTES", "ZipSink"]

_FILE_MODE = stat.S_IFREG | 0o644


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
        info = self._info(name)
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

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = _FILE_MODE << 16  # zipfile's default is rw------- (owner only)
        return info

    def write_text(self, name: str, text: str) -> None:
        """Member ``name`` with ``text`` as UTF-8."""
        with self.member(name) as raw:
            raw.write(text.encode("utf-8"))

    def add_deflated(self, name: str, member: Deflated, on_chunk: Callable[[int], None]) -> None:
        """Member ``name`` from data deflated ahead of time (``deflate.deflate_file``,
        ``deflate.ThreadDeflater``), its stream copied as it is in ``CHUNK`` pieces;
        ``on_chunk(bytes copied so far)`` after each (it may raise to cancel). The entry is
        the one ``member`` would get (same method, level, CRC, sizes) without deflating here,
        and it is listed only once the whole stream is there: a cancel in between leaves the
        zip without it (``zip_internals.append_compressed``). Raises ``ValueError`` while
        another member is open, for a zip written to an unseekable stream, or if
        ``member.path`` does not hold ``compressed_size`` bytes; ``OSError`` from reading or
        writing."""
        info = self._info(name)
        info.file_size, info.compress_size, info.CRC = member.size, member.compressed_size, member.crc
        append_compressed(self.zf, info, member.path, on_chunk)
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
