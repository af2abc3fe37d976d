"""``python -m server snapshot`` (run by the set-up): the real build with Node.js and the
vendored Pyodide, once per set of sources, into a container the page can restore
(``static/boot/snapshot-runtime.mjs`` describes it; read here the same way)."""
from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile

import pytest
import zstandard

from server.cached_build import BuildFailed
from server.cli import main
from server.page_assets import ROOT, vendored_interpreter
from server.snapshot import slim_stdlib

PYODIDE = ROOT / vendored_interpreter().lstrip("/").rsplit("/", 1)[0]

MAGIC = b"cellhub-snapshot-1\n"


def read_container(data: bytes) -> tuple[dict, dict[str, bytes]]:
    assert data.startswith(MAGIC)
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    head_end = len(MAGIC) + 4 + length
    header = json.loads(data[len(MAGIC) + 4:head_end])
    start = -(-head_end // 8) * 8
    blobs = {name: data[start + offset:start + offset + size] for name, (offset, size) in header["blobs"].items()}
    assert all(offset % 8 == 0 for offset, _ in header["blobs"].values())  # Pyodide reads 32-bit words
    return header, blobs


def test_the_snapshot_command_builds_a_restorable_container_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLHUB_SNAPSHOT_DIR", str(tmp_path))
    monkeypatch.setenv("CELLHUB_SNAPSHOT", "1")
    assert main(["snapshot"]) == 0
    data = b""
    for part in ("", "-memory"):  # the container, cut before its memory blob, and that blob
        (zst,) = [p for p in tmp_path.glob("*.zst") if p.name.endswith(f"{part}.zst") and ("-" in p.name) == bool(part)]
        (gz,) = [p for p in tmp_path.glob("*.gz") if p.name.endswith(f"{part}.gz") and ("-" in p.name) == bool(part)]
        raw = zstandard.ZstdDecompressor().decompress(zst.read_bytes(), max_output_size=1 << 30)
        assert gzip.decompress(gz.read_bytes()) == raw
        frame = zstandard.get_frame_parameters(zst.read_bytes())
        assert frame.window_size <= 8 << 20 and frame.has_checksum  # what browsers decode
        data += raw
    (zst,) = [p for p in tmp_path.glob("*.zst") if "-" not in p.name]

    header, blobs = read_container(data)
    assert header["pyodide"] == "314.0.7" and header["sitePackages"] == "/lib/python3.14/site-packages"
    (lib,) = header["libs"]
    assert lib.startswith("pydantic_core/_pydantic_core.") and blobs[f"site/{lib}"][:4] == b"\0asm"
    assert "pydantic/v1/fields.py" in header["files"] and lib not in header["files"]
    assert "pydantic/main.py" not in header["files"]  # imported: its code is in the memory
    assert [path for _, path in header["handles"]] == [f"{header['sitePackages']}/{lib}"]
    assert header["memoryBytes"] == len(blobs["memory"]) and header["tableBase"] % 64 == 0
    assert header["modules"] > 250  # sys.modules: the standard library parts, pydantic, every app module
    assert json.loads(blobs["lock"]) == json.loads((PYODIDE / "pyodide-lock.json").read_bytes())
    # The start of the memory is stored XORed with a fresh instance's (the data segments).
    reference = header["reference"]
    assert reference["end"] % 65536 == 0 and 1 << 20 < reference["end"] < 64 << 20
    assert len(reference["hash"]) == 8
    # The page's standard library: without the modules the memory holds, with the others.
    (stdlib,) = tmp_path.glob("*-stdlib.zip")
    full = zipfile.ZipFile(PYODIDE / "python_stdlib.zip")
    slim = zipfile.ZipFile(stdlib)
    assert "typing.py" in full.namelist() and "typing.py" not in slim.namelist()
    assert "enum.py" not in slim.namelist() and "pdb.py" in slim.namelist()
    assert set(slim.namelist()) < set(full.namelist())
    # Nothing of the build machine in the snapshot: Python's argv and executable are the page's.
    assert str(tmp_path).encode() not in blobs["memory"]
    assert b"snapshot_build.mjs" not in blobs["memory"]

    stamp = zst.stat().st_mtime_ns
    assert main(["snapshot"]) == 0 and zst.stat().st_mtime_ns == stamp  # not built twice
    assert list(tmp_path.glob("*.lock")) == []


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_the_slim_standard_library_leaves_out_exactly_the_held_modules():
    source = _zip({"json/": b"", "json/__init__.py": b"import x\n" * 50, "json/tool.py": b"tool", "pdb.py": b"p"})
    slim = zipfile.ZipFile(io.BytesIO(slim_stdlib(source, ["json/__init__.py"])))
    assert slim.namelist() == ["json/", "json/tool.py", "pdb.py"]
    assert slim.read("json/tool.py") == b"tool" and slim.testzip() is None
    assert slim.getinfo("json/tool.py").compress_type == zipfile.ZIP_DEFLATED
    with pytest.raises(BuildFailed, match="os.py"):
        slim_stdlib(source, ["os.py"])
