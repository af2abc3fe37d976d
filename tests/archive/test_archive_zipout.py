import errno
import hashlib
import io
import os
import sys
import threading
import zipfile
import zlib

import numpy as np
import pytest

from server.archive.zipout import (
    CHUNK, POLL_BYTES, THREAD_CHUNK, HashingWriter, Progress, ThreadDeflater, ZipSink, deflate_file,
)


class Stop(Exception):
    pass


def test_a_big_write_is_polled_every_64_kib_and_stops_where_the_poll_raises():
    inner = io.BytesIO()
    polls = []

    def poll():
        polls.append(inner.tell())
        if len(polls) == 2:
            raise Stop

    writer = HashingWriter(inner, poll)
    data = bytes(range(256)) * (5 * POLL_BYTES // 256)  # five slices in one write
    with pytest.raises(Stop):
        writer.write(data)
    assert polls == [POLL_BYTES, 2 * POLL_BYTES]  # before the 2nd and the 3rd slice
    assert inner.getvalue() == data[:2 * POLL_BYTES]
    assert writer.size == 2 * POLL_BYTES and writer.sha.hexdigest() == hashlib.sha256(data[:2 * POLL_BYTES]).hexdigest()


def test_small_writes_are_polled_once_per_64_kib():
    polls = []
    writer = HashingWriter(io.BytesIO(), lambda: polls.append(1))
    per_poll = -(-POLL_BYTES // 1000)  # writes of 1000 bytes that make 64 KiB
    for _ in range(4 * per_poll):
        writer.write(b"x" * 1000)
    assert len(polls) == 3  # before the writes after the 1st, 2nd and 3rd 64 KiB
    writer.write(b"x")
    assert len(polls) == 4


def test_progress_poll_repeats_the_last_report_and_never_goes_back():
    calls = []
    progress = Progress(lambda *call: calls.append(call), total=10)
    progress.poll()  # nothing reported yet: nothing to repeat
    progress.report("annotations", 3, "a")
    progress.poll()
    progress.report("annotations", 2, "b")  # a smaller fraction than before is held at 0.3
    assert calls == [("annotations", 0.3, "a"), ("annotations", 0.3, "a"), ("annotations", 0.3, "b")]


def _data(n):
    text = "".join(f"{i},img_{i % 7}.png,{i * 0.37!r},cell\r\n" for i in range(n)).encode()
    return text + np.random.default_rng(n).bytes(n)  # compressible, then not


def _sink_zip(path, members, deflated=()):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0))
        for name, data in members:
            if name in deflated:
                sink.add_deflated(name, deflated[name], lambda _n: None)
            else:
                with sink.member(name) as raw:
                    raw.write(data)
    return sink.files


def test_a_member_deflated_elsewhere_is_the_entry_zipfile_writes(tmp_path):
    members = [("README.md", b"hello\n"), ("metrics/metrics.csv", _data(40_000)), ("metrics/données µm.json", _data(5)),
               ("metrics/empty.xlsx", b""), ("metadata.json", b"{}")]
    deflated = {}
    for name, data in members[1:4]:
        (tmp_path / "src").write_bytes(data)
        deflated[name] = deflate_file(str(tmp_path / "src"), str(tmp_path / f"{len(deflated)}.deflate"))
    ours = _sink_zip(tmp_path / "ours.zip", members, deflated)
    theirs = _sink_zip(tmp_path / "theirs.zip", members)
    assert ours == theirs  # the same sha256 and size for every member
    with zipfile.ZipFile(tmp_path / "ours.zip") as a, zipfile.ZipFile(tmp_path / "theirs.zip") as b:
        assert a.testzip() is None
        assert [(i.filename, i.CRC, i.file_size, i.compress_size, i.compress_type, i.external_attr, i.flag_bits)
                for i in a.infolist()] == [
               (i.filename, i.CRC, i.file_size, i.compress_size, i.compress_type, i.external_attr, i.flag_bits)
               for i in b.infolist()]
        assert [a.read(name) for name, _ in members] == [data for _, data in members]
    assert (tmp_path / "ours.zip").read_bytes() == (tmp_path / "theirs.zip").read_bytes()  # byte for byte


def test_a_cancel_while_a_deflated_member_is_copied_leaves_a_valid_zip_without_it(tmp_path):
    data = _data(200_000)
    (tmp_path / "src").write_bytes(data)
    member = deflate_file(str(tmp_path / "src"), str(tmp_path / "m.deflate"))
    assert member.compressed_size > 2 * CHUNK

    def on_chunk(copied):
        if copied >= CHUNK:
            raise Stop

    with pytest.raises(Stop):
        with zipfile.ZipFile(tmp_path / "a.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
            sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0))
            sink.write_text("first.txt", "kept")
            sink.add_deflated("metrics/metrics.csv", member, on_chunk)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["first.txt"] and zf.read("first.txt") == b"kept" and zf.testzip() is None
    assert "metrics/metrics.csv" not in sink.files


def test_a_deflated_member_cannot_be_added_while_another_is_open(tmp_path):
    (tmp_path / "src").write_bytes(b"x")
    member = deflate_file(str(tmp_path / "src"), str(tmp_path / "m.deflate"))
    with zipfile.ZipFile(tmp_path / "a.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0))
        with sink.member("open.txt") as raw:
            raw.write(b"y")
            with pytest.raises(ValueError, match="still open"):
                sink.add_deflated("m", member, lambda _n: None)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["open.txt"]


def _text_zip(path, pieces, on_thread, tmpdir=None, poll=None):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0), poll=poll)
        sink.write_text("README.md", "first\n")
        with sink.text_member("annotations/données.json", deflate_on_thread=on_thread, tmpdir=tmpdir) as text:
            for piece in pieces:
                text.write(piece)
        sink.write_text("last.txt", "last\n")
    return sink.files


def test_a_text_member_deflated_on_a_thread_is_the_entry_zipfile_writes(tmp_path):
    rng = np.random.default_rng(5)
    pieces = [",\n".join(f'{{"id":{i},"xy":[{x!r},{y!r}],"µm":"{i % 7}"}}' for i, (x, y) in
                         enumerate(rng.random((n, 2)).tolist())) for n in rng.integers(1, 3000, 300).tolist()]
    assert sum(map(len, pieces)) > 8 * THREAD_CHUNK  # many hand-overs, and pieces of every size
    (tmp_path / "tmp").mkdir()
    ours = _text_zip(tmp_path / "ours.zip", pieces, True, str(tmp_path / "tmp"))
    theirs = _text_zip(tmp_path / "theirs.zip", pieces, False)
    assert ours == theirs
    assert (tmp_path / "ours.zip").read_bytes() == (tmp_path / "theirs.zip").read_bytes()  # byte for byte
    assert list((tmp_path / "tmp").iterdir()) == []  # its temporary file is gone


def test_a_cancel_inside_a_member_deflated_on_a_thread_stops_it_and_leaves_nothing(tmp_path):
    (tmp_path / "tmp").mkdir()
    polls = []

    def poll():
        polls.append(1)
        if len(polls) == 20:  # after about 20 x 64 KiB of text
            raise Stop

    pieces = ["x" * 1000 + "\n"] * 5000
    with pytest.raises(Stop):
        _text_zip(tmp_path / "a.zip", pieces, True, str(tmp_path / "tmp"), poll)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["README.md"] and zf.testzip() is None
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not any(t.name == "zip-deflate" for t in threading.enumerate())


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


@pytest.mark.parametrize("on_thread", [False, True])
def test_a_cancelled_text_member_never_polls_or_writes_again(tmp_path, on_thread):
    # A cancel raised by the producer (its own checkpoint) while the text wrapper still holds
    # unflushed text: when the wrapper is collected, that text must not reach the member, nor
    # its flush call the job's checkpoint again (from a finaliser, after the job ended).
    import gc

    polls, unraisable = [], []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(Stop):
            with zipfile.ZipFile(tmp_path / "a.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
                sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0), poll=lambda: polls.append(1))
                with sink.text_member("m.json", deflate_on_thread=on_thread, tmpdir=str(tmp_path)) as text:
                    text.write("x" * (2 * POLL_BYTES))  # straight through: the next write polls
                    text.write("y" * 100)  # waits in the wrapper's buffer
                    raise Stop
        seen = len(polls)
        del text
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert len(polls) == seen and unraisable == []
