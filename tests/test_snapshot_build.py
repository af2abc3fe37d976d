"""``python -m server snapshot`` (run by the set-up): the real build with Node.js and the
vendored Pyodide, once per set of sources, into a container the page can restore
(``static/boot/snapshot-runtime.mjs`` describes it; read here the same way)."""
from __future__ import annotations

import gzip
import json
import struct

import zstandard

from server.cli import main

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
    (zst,) = tmp_path.glob("*.zst")
    (gz,) = tmp_path.glob("*.gz")
    data = zstandard.ZstdDecompressor().decompress(zst.read_bytes(), max_output_size=1 << 30)
    assert gzip.decompress(gz.read_bytes()) == data
    frame = zstandard.get_frame_parameters(zst.read_bytes())
    assert frame.window_size <= 8 << 20 and frame.has_checksum  # what browsers decode

    header, blobs = read_container(data)
    assert header["pyodide"] == "314.0.7" and header["sitePackages"] == "/lib/python3.14/site-packages"
    (lib,) = header["libs"]
    assert lib.startswith("pydantic_core/_pydantic_core.") and blobs[f"site/{lib}"][:4] == b"\0asm"
    assert "pydantic/v1/fields.py" in header["files"] and lib not in header["files"]
    assert "pydantic/main.py" not in header["files"]  # imported: its code is in the memory
    assert [path for _, path in header["handles"]] == [f"{header['sitePackages']}/{lib}"]
    assert header["memoryBytes"] == len(blobs["memory"]) and header["tableBase"] % 64 == 0
    assert header["modules"] > 250  # sys.modules: the standard library parts, pydantic, every app module
    # Nothing of the build machine in the snapshot: Python's argv and executable are the page's.
    assert str(tmp_path).encode() not in blobs["memory"]
    assert b"snapshot_build.mjs" not in blobs["memory"]

    stamp = zst.stat().st_mtime_ns
    assert main(["snapshot"]) == 0 and zst.stat().st_mtime_ns == stamp  # not built twice
    assert list(tmp_path.glob("*.lock")) == []
