"""``ThreadDeflater``: a full disk is an ``OSError`` and leaves nothing; short writes lose no byte."""
import errno
import hashlib
import io
import os
import zlib

import numpy as np
import pytest

from server.archive.deflate import THREAD_CHUNK, ThreadDeflater


def test_a_full_disk_while_deflating_on_a_thread_is_an_os_error_and_leaves_nothing(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    deflater = ThreadDeflater(str(tmp_path))
    try:
        deflater._out.close()
        deflater._out = open("/dev/full", "wb", buffering=0)  # every write: ENOSPC (opened, never removed)
        with pytest.raises(OSError) as raised:
            for _ in range(40):
                deflater.write(np.random.default_rng(1).bytes(THREAD_CHUNK // 4))
            deflater.finish(0, "")
        assert raised.value.errno == errno.ENOSPC
    finally:
        deflater.abort()
    assert list(tmp_path.iterdir()) == [] and os.path.exists("/dev/full")
    assert not deflater._feed.alive()


class _ShortWrites(io.FileIO):
    """A file whose writes take at most 1000 bytes at a time (as a filling disk may)."""

    def write(self, data):
        return super().write(memoryview(data)[:1000])


def test_short_writes_of_the_deflating_thread_still_write_every_byte(tmp_path):
    data = np.random.default_rng(2).bytes(3 * THREAD_CHUNK) + b"text " * 100_000
    deflater = ThreadDeflater(str(tmp_path))
    try:
        deflater._out.close()
        deflater._out = _ShortWrites(deflater.path, "wb")
        deflater.write(data)
        member = deflater.finish(len(data), hashlib.sha256(data).hexdigest())
        stream = open(member.path, "rb").read()
        assert len(stream) == member.compressed_size and zlib.decompress(stream, -15) == data
    finally:
        deflater.abort()
