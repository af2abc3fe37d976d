"""The bytecode bundle of the page (``app.browser.bytecode``): built once per change of the
sources by the vendored Pyodide under Node.js, kept in a cache folder shared by servers, and
served by ``server.web`` with the page. See ``BytecodeBundle``."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional


# Run by Node.js: boots the vendored Pyodide, loads the wheels and the app zip as the page
# does, and writes app.browser.bytecode.build_bundle() of every app module.
_BYTECODE_BUILDER_JS = r"""
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
const [pyodideDir, wheelsDir, appZip, out] = process.argv.slice(1);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const py = await loadPyodide({ indexURL: pyodideDir + path.sep, stdout: () => {} });
py.runPython("import sys\n_before = set(sys.modules)");
const wheels = JSON.parse(fs.readFileSync(path.join(wheelsDir, "wheels.json"), "utf8"));
await py.loadPackage(wheels.map((n) => path.join(wheelsDir, n)), { messageCallback: () => {} });
py.FS.mkdirTree("/home/pyodide");
py.FS.chdir("/home/pyodide");
py.unpackArchive(new Uint8Array(fs.readFileSync(appZip)), "zip", { extractDir: "/home/pyodide/app" });
const bundle = py.runPython(`
import os
if "" not in sys.path:
    sys.path.insert(0, "")
from app.browser.bytecode import build_bundle
names = sorted(
    os.path.splitext(os.path.join(root, f))[0].replace(os.sep, ".").removesuffix(".__init__")
    for root, _, files in os.walk("app") for f in files if f.endswith(".py"))
build_bundle(names, skip=("app.browser.boot", "app.browser.bytecode"), before=_before)
`);
fs.writeFileSync(out, bundle.toJs());
"""
BYTECODE_BUILD_TIMEOUT_S = 600
BYTECODE_KEEP = 6
"""Bundles kept in the cache folder (the newest; older ones are deleted after a build)."""


def bytecode_cache_dir() -> Path:
    """Where built bundles are kept across servers: ``$CELLHUB_BYTECODE_DIR``, else
    ``$XDG_CACHE_HOME/cellhub-export/bytecode`` (``~/.cache/...``)."""
    if os.environ.get("CELLHUB_BYTECODE_DIR"):
        return Path(os.environ["CELLHUB_BYTECODE_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cellhub-export" / "bytecode"


class BytecodeBundle:
    """The precompiled bytecode of the page's modules (``app.browser.bytecode``) for this
    app zip, the wheels and the vendored Pyodide; its name is a hash of all of them, so a
    bundle is never served for other sources.

    Built by Node.js with the vendored Pyodide (the only interpreter that writes Pyodide's
    bytecode), in a background thread the first time ``current()`` finds none, and kept
    in ``bytecode_cache_dir()`` (one build per change of the sources, shared by every
    server). Without Node.js, or with ``CELLHUB_BYTECODE=0``, there is none and the page
    compiles its modules itself, as it would anyway."""

    def __init__(self, app_zip: bytes, static_dir: Path, interpreter_url: str) -> None:
        self.app_zip = app_zip
        self.pyodide_dir = static_dir / Path(interpreter_url).parent.relative_to("/static")
        self.wheels_dir = static_dir / "wheels"
        self.enabled = os.environ.get("CELLHUB_BYTECODE", "1") != "0"
        self._key: Optional[str] = None
        self._data: Optional[bytes] = None
        self._lock = threading.Lock()
        self._building = False
        self._failed = False  # one failed build per server is enough to know

    @property
    def key(self) -> str:
        """32 hex digits of SHA-256 over the builder, the app zip, Pyodide's standard
        library, ``wheels.json`` and the wheels."""
        if self._key is None:
            digest = hashlib.sha256(_BYTECODE_BUILDER_JS.encode())
            digest.update(self.app_zip)
            stdlib = self.pyodide_dir / "python_stdlib.zip"
            for path in [stdlib, self.wheels_dir / "wheels.json", *sorted(self.wheels_dir.glob("*.whl"))]:
                digest.update(path.name.encode())
                digest.update(path.read_bytes() if path.is_file() else b"-")
            self._key = digest.hexdigest()[:32]
        return self._key

    @property
    def path(self) -> Path:
        """The gzip-compressed bundle in the cache folder (there once built)."""
        return bytecode_cache_dir() / f"{self.key}.bin.gz"

    def url(self) -> str:
        """Where the server serves it (``Content-Encoding: gzip``, cached for good)."""
        return f"/bytecode-{self.key}.bin"

    def current(self) -> Optional[bytes]:
        """The gzip-compressed bundle, or None while there is none (then a build starts,
        once per server, if it can)."""
        if self._data is not None or not self.enabled:
            return self._data
        if self.path.is_file():
            self._data = self.path.read_bytes()
            return self._data
        if self._claim_build():
            threading.Thread(target=self._build, name="bytecode-build", daemon=True).start()
        return None

    def _claim_build(self) -> bool:
        """True when this caller is to run the build: none runs or failed in this server,
        and Node.js and the vendored Pyodide are there."""
        with self._lock:
            if (self._building or self._failed or not shutil.which("node")
                    or not (self.pyodide_dir / "pyodide.mjs").is_file()):
                return False
            self._building = True
            return True

    def build(self) -> bool:
        """Build the bundle now, in this thread, unless it is there (``python -m server
        bytecode``, run by the set-up so that the first page already has it). True when
        the bundle is there afterwards; False when disabled, without Node.js or the
        vendored Pyodide, or when the build failed (its reason is printed)."""
        if not self.enabled:
            return False
        if self.path.is_file():
            return True
        if not self._claim_build():
            return False
        self._build()
        return self.path.is_file()

    def _build(self) -> None:
        lock: Optional[Path] = None
        try:
            folder = bytecode_cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            claim = folder / f"{self.key}.lock"
            if claim.exists() and time.time() - claim.stat().st_mtime > BYTECODE_BUILD_TIMEOUT_S:
                claim.unlink(missing_ok=True)  # its builder died
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # another server builds it; current() finds it once it is there
            lock = claim
            with tempfile.TemporaryDirectory(prefix="cellhub-bytecode-") as tmp:
                zipped, out = Path(tmp) / "app.zip", Path(tmp) / "bundle.bin"
                zipped.write_bytes(self.app_zip)
                result = subprocess.run(
                    ["node", "--input-type=module", "-e", _BYTECODE_BUILDER_JS,
                     str(self.pyodide_dir), str(self.wheels_dir), str(zipped), str(out)],
                    capture_output=True, text=True, timeout=BYTECODE_BUILD_TIMEOUT_S)
                if result.returncode != 0 or not out.is_file():
                    self._failed = True
                    print(f"[cellhub] bytecode bundle not built: {result.stderr[-2000:]}", flush=True)
                    return
                staged = folder / f"{self.key}.{os.getpid()}.tmp"
                staged.write_bytes(gzip.compress(out.read_bytes(), compresslevel=6))
                os.replace(staged, self.path)
            for old in sorted(folder.glob("*.bin.gz"), key=lambda p: p.stat().st_mtime)[:-BYTECODE_KEEP]:
                old.unlink(missing_ok=True)
        except (OSError, subprocess.SubprocessError) as exc:
            self._failed = True
            print(f"[cellhub] bytecode bundle not built: {exc}", flush=True)
        finally:
            if lock is not None:
                lock.unlink(missing_ok=True)
            with self._lock:
                self._building = False
