"""Streaming zip output with a SHA-256 and size per member, and overall progress reporting."""
from __future__ import annotations

import hashlib
import io
import zipfile
from contextlib import contextmanager
from typing import IO, Callable, Iterator

CHUNK = 1 << 20  # bytes per read when copying a file into the zip
Checkpoint = Callable[[str, float, str], None]


class HashingWriter(io.RawIOBase):
    """A binary stream that forwards every byte to ``inner`` while hashing and counting them.
    Closing it leaves ``inner`` open."""

    def __init__(self, inner: IO[bytes]) -> None:
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.inner.write(view)
        self.size += len(view)
        return len(view)


class ZipSink:
    """Writes members into an open ``ZipFile`` one at a time through ``ZipFile.open(name, "w")``
    (deflated; nothing is buffered beyond zlib's window) and records ``files[name] =
    {"sha256", "size"}`` (uncompressed) for each finished member. ``date_time`` is the zip
    timestamp of every member."""

    def __init__(self, zf: zipfile.ZipFile, date_time: tuple) -> None:
        self.zf = zf
        self.date_time = date_time
        self.files: dict[str, dict] = {}

    @contextmanager
    def member(self, name: str, size_hint: int = 0) -> Iterator[HashingWriter]:
        """A binary stream into member ``name``; ``size_hint`` (bytes, if known) lets zipfile
        choose ZIP64 headers up front for members over 2 GiB."""
        info = zipfile.ZipInfo(name, self.date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size = size_hint
        with self.zf.open(info, "w", force_zip64=size_hint > (1 << 30)) as raw:
            writer = HashingWriter(raw)
            yield writer
        self.files[name] = {"sha256": writer.sha.hexdigest(), "size": writer.size}

    @contextmanager
    def text_member(self, name: str) -> Iterator[io.TextIOWrapper]:
        """A UTF-8 text stream (``newline=""``: no newline translation) into member ``name``."""
        with self.member(name) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            yield text
            text.flush()
            text.detach()

    def write_text(self, name: str, text: str) -> None:
        """Member ``name`` with ``text`` as UTF-8."""
        with self.member(name) as raw:
            raw.write(text.encode("utf-8"))

    def copy_file(self, name: str, source: IO[bytes], on_chunk: Callable[[int], None], size_hint: int = 0) -> None:
        """Member ``name`` copied from the binary ``source`` in ``CHUNK`` pieces; ``on_chunk(bytes
        copied so far)`` after each piece (it may raise to cancel; the exception propagates)."""
        with self.member(name, size_hint) as raw:
            copied = 0
            while chunk := source.read(CHUNK):
                raw.write(chunk)
                copied += len(chunk)
                on_chunk(copied)


class Progress:
    """Turns work units into the overall fraction passed to ``checkpoint(stage, fraction,
    message)``: ``report(stage, within, message)`` reports ``done + within`` of ``total`` units
    (capped at 1.0); ``advance(units)`` moves ``done`` on once a step is finished."""

    def __init__(self, checkpoint: Checkpoint, total: float) -> None:
        self.checkpoint = checkpoint
        self.total = max(total, 1.0)
        self.done = 0.0

    def report(self, stage: str, within: float, message: str) -> None:
        self.checkpoint(stage, min(1.0, (self.done + within) / self.total), message)

    def advance(self, units: float) -> None:
        self.done += units
