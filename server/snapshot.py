"""The page's memory snapshot: the interpreter with the wheels loaded and every app module
imported, built once per change of its sources by the vendored Pyodide under Node.js
(``server/snapshot_build.mjs``), served compressed with the page, restored by
``static/boot/snapshot-boot.mjs``. See ``SnapshotBundle``."""
from __future__ import annotations

import gzip
import io
import json
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Iterable, Optional

import zstandard

from server.cached_build import BuildFailed, CachedBuild, file_digest

ROOT = Path(__file__).resolve().parents[1]
BUILDER = ROOT / "server" / "snapshot_build.mjs"
RUNTIME = ROOT / "static" / "boot" / "snapshot-runtime.mjs"
PYODIDE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip", "pyodide-lock.json")
ZSTD_LEVEL = 19
ZSTD_WINDOW_LOG = 23
"""8 MiB: the largest window browsers decode for ``Content-Encoding: zstd`` (RFC 9659)."""
ENCODINGS = {"zstd": ".zst", "gzip": ".gz"}
"""Content codings served, in order of preference, and their files."""
STDLIB = "-stdlib.zip"
"""The file of the page's standard library zip (``slim_stdlib``)."""
MEMORY = "-memory"
"""Files (``MEMORY + ENCODINGS[coding]``) and URL part of the container's memory blob, served
on its own: the page requests it once its interpreter exists and reads it into its memory."""
MAGIC = b"cellhub-snapshot-1\n"


class SnapshotBundle(CachedBuild):
    """The snapshot container (``static/boot/snapshot-runtime.mjs`` describes it) of this app
    zip, these wheels, this vendored Pyodide and this Node.js, stored zstd- and
    gzip-compressed (``Content-Encoding`` by the client's ``Accept-Encoding``), and the
    standard library zip the restored interpreter is given (``slim_stdlib``).

    ``CachedBuild`` does the rest: ``CELLHUB_SNAPSHOT=0`` turns it off (the page then boots
    as without one), ``CELLHUB_SNAPSHOT_DIR`` moves its cache. The key covers the builder
    and the runtime hooks the page restores with, so a page is never handed a snapshot laid
    out by other code."""

    KIND = "snapshot"
    SUFFIXES = (".zst", ".gz", MEMORY + ".zst", MEMORY + ".gz", STDLIB)

    def __init__(self, app_zip: bytes, static_dir: Path, interpreter_url: str) -> None:
        super().__init__(static_dir / Path(interpreter_url).parent.relative_to("/static"))
        self.app_zip = app_zip
        self.wheels_dir = static_dir / "wheels"

    def _key_parts(self) -> Iterable[bytes]:
        yield Path(__file__).read_bytes()  # what it writes and how
        yield BUILDER.read_bytes()
        yield RUNTIME.read_bytes()
        yield self.app_zip
        for name in PYODIDE_FILES:
            yield file_digest(self.pyodide_dir / name)
        for path in [self.wheels_dir / "wheels.json", *sorted(self.wheels_dir.glob("*.whl"))]:
            yield file_digest(path)
        yield _node_version().encode()

    def url(self) -> str:
        return f"/snapshot-{self.key}.bin"

    def memory_url(self) -> str:
        return f"/snapshot-{self.key}{MEMORY}.bin"

    def stdlib_url(self) -> str:
        return f"/snapshot-{self.key}{STDLIB}"

    def offered(self, accept_encoding: Optional[str]) -> Optional[str]:
        """The URL to hand a client that sent ``accept_encoding``, or None: not built yet
        (a build starts), turned off, or no coding the client takes."""
        if encoding_for(accept_encoding) is None or not self.ready():
            return None
        return self.url()

    def _produce(self, tmp: Path) -> dict[str, bytes]:
        site, app, out = tmp / "site", tmp / "app.zip", tmp / "snapshot.bin"
        for wheel in sorted(self.wheels_dir.glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(site)
        app.write_bytes(self.app_zip)
        try:
            result = subprocess.run(["node", str(BUILDER), str(self.pyodide_dir), str(site), str(app), str(out)],
                                    capture_output=True, text=True, timeout=self.TIMEOUT_S)
        except subprocess.SubprocessError as exc:
            raise BuildFailed(str(exc)) from exc
        if result.returncode != 0 or not out.is_file():
            raise BuildFailed(result.stderr[-2000:])
        head, memory = split_container(out.read_bytes())
        held = json.loads(out.with_name(out.name + ".stdlib.json").read_text())
        files = {STDLIB: slim_stdlib((self.pyodide_dir / "python_stdlib.zip").read_bytes(), held)}
        for prefix, raw in (("", head), (MEMORY, memory)):
            params = zstandard.ZstdCompressionParameters.from_level(
                ZSTD_LEVEL, source_size=len(raw), window_log=ZSTD_WINDOW_LOG, write_checksum=1)
            files[prefix + ".zst"] = zstandard.ZstdCompressor(compression_params=params).compress(raw)
            files[prefix + ".gz"] = gzip.compress(raw, compresslevel=6)
        return files


def split_container(data: bytes) -> tuple[bytes, bytes]:
    """The container ``data`` cut before its memory blob, and that blob: the page reads the
    first while its interpreter loads, the second into the interpreter's memory once it
    exists (``static/boot/snapshot-boot.mjs``), so that the memory is never held whole in
    JS. The header still names the memory blob's offset and size. Raises ``BuildFailed``
    unless the memory is the container's last blob."""
    if not data.startswith(MAGIC):
        raise BuildFailed("the builder wrote no container")
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    header = json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + length])
    start = -(-(len(MAGIC) + 4 + length) // 8) * 8
    offset, size = header["blobs"]["memory"]
    if start + offset + size != len(data) or any(o >= offset for name, (o, _) in header["blobs"].items()
                                                  if name != "memory"):
        raise BuildFailed("the memory is not the container's last blob")
    return data[:start + offset], data[start + offset:]


def slim_stdlib(stdlib_zip: bytes, held: Iterable[str]) -> bytes:
    """``stdlib_zip`` (Pyodide's ``python_stdlib.zip``) without the members named in ``held``
    (the modules the snapshot holds as code; their sources would only serve tracebacks),
    every other member as it was (name, time, compression). Raises ``BuildFailed`` when a
    name in ``held`` is not a member (the snapshot was built from another zip)."""
    held = set(held)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(stdlib_zip)) as source, zipfile.ZipFile(out, "w") as slim:
        missing = held - set(source.namelist())
        if missing:
            raise BuildFailed(f"not in the standard library zip: {sorted(missing)[:5]}")
        for info in source.infolist():
            if info.filename not in held:
                slim.writestr(info, source.read(info), compress_type=info.compress_type, compresslevel=9)
    return out.getvalue()


def encoding_for(accept_encoding: Optional[str], codings: Iterable[str] = tuple(ENCODINGS)) -> Optional[str]:
    """The first of ``codings`` (default: ``ENCODINGS``) that the ``Accept-Encoding`` value
    takes (a q=0 refuses it), or None."""
    taken = set()
    for item in (accept_encoding or "").split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip().removeprefix("q=")
        if name and not (params and q.replace(".", "", 1).isdigit() and float(q) == 0):
            taken.add(name.strip().lower())
    return next((coding for coding in codings if coding in taken), None)


_NODE_VERSION: Optional[str] = None


def _node_version() -> str:
    """``node --version`` (the snapshot holds what the builder's runtime made), or "none"."""
    global _NODE_VERSION
    if _NODE_VERSION is None:
        try:
            _NODE_VERSION = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                           timeout=30).stdout.strip() or "none"
        except (OSError, subprocess.SubprocessError):
            _NODE_VERSION = "none"
    return _NODE_VERSION
