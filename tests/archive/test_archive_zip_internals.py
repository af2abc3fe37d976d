"""``zip_internals.append_compressed`` (through ``ZipSink.add_deflated``): the entry zipfile itself
writes, byte for byte, on the Python versions its internals were read for."""
import io
import sys
import zipfile

import numpy as np
import pytest

from server.archive.deflate import CHUNK, deflate_file
from server.archive.zip_internals import PRIVATE_NAMES, READ_FOR
from server.archive.zip_sink import ZipSink


class Stop(Exception):
    pass


def test_zipfile_internals_were_read_for_this_python():
    # append_compressed copies what ZipFile.open(name, "w") and its writer's close do, with
    # zipfile's private attributes. On another Python, read Lib/zipfile again, compare, and
    # only then add the version to READ_FOR.
    assert sys.version_info[:2] in READ_FOR, (
        f"server/archive/zip_internals.py was read for CPython {READ_FOR}, this is {sys.version_info[:2]}")
    with zipfile.ZipFile(io.BytesIO(), "w") as zf:
        missing = [name for name in PRIVATE_NAMES if not hasattr(zf, name)]
    assert missing == [] and hasattr(zipfile.ZipInfo, "FileHeader")


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
