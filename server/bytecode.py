"""The bytecode bundle of the page (``app.browser.bytecode``): built once per change of the
sources by the vendored Pyodide under Node.js, kept in a cache folder shared by servers, and
served by ``server.routes.runtime`` with the page. See ``BytecodeBundle`` and ``server.cached_build``."""
from __future__ import annotations

import gzip
import subprocess
from pathlib import Path
from typing import Iterable, Optional

from server.cached_build import BuildFailed, CachedBuild, file_digest


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


class BytecodeBundle(CachedBuild):
    """The precompiled bytecode of the page's modules (``app.browser.bytecode``) for this
    app zip, the wheels and the vendored Pyodide (``CachedBuild``: ``CELLHUB_BYTECODE=0``
    turns it off, ``CELLHUB_BYTECODE_DIR`` moves its cache). Built by Node.js with the
    vendored Pyodide, the only interpreter that writes Pyodide's bytecode; without one
    the page compiles its modules itself, as it would anyway."""

    KIND = "bytecode"
    SUFFIXES = (".bin.gz",)

    def __init__(self, app_zip: bytes, static_dir: Path, interpreter_url: str) -> None:
        super().__init__(static_dir / Path(interpreter_url).parent.relative_to("/static"))
        self.app_zip = app_zip
        self.wheels_dir = static_dir / "wheels"
        self._data: Optional[bytes] = None

    def _key_parts(self) -> Iterable[bytes]:
        """The builder, the app zip, Pyodide's standard library, ``wheels.json`` and the wheels."""
        yield _BYTECODE_BUILDER_JS.encode()
        yield self.app_zip
        for path in [self.pyodide_dir / "python_stdlib.zip", self.wheels_dir / "wheels.json",
                     *sorted(self.wheels_dir.glob("*.whl"))]:
            yield file_digest(path)

    def url(self) -> str:
        """Where the server serves it (``Content-Encoding: gzip``, cached for good)."""
        return f"/bytecode-{self.key}.bin"

    def current(self) -> Optional[bytes]:
        """The gzip-compressed bundle, or None while there is none (then a build starts,
        once per server, if it can)."""
        if self._data is None and self.ready():
            self._data = self.path.read_bytes()
        return self._data

    def _produce(self, tmp: Path) -> dict[str, bytes]:
        zipped, out = tmp / "app.zip", tmp / "bundle.bin"
        zipped.write_bytes(self.app_zip)
        try:
            result = subprocess.run(
                ["node", "--input-type=module", "-e", _BYTECODE_BUILDER_JS,
                 str(self.pyodide_dir), str(self.wheels_dir), str(zipped), str(out)],
                capture_output=True, text=True, timeout=self.TIMEOUT_S)
        except subprocess.SubprocessError as exc:
            raise BuildFailed(str(exc)) from exc
        if result.returncode != 0 or not out.is_file():
            raise BuildFailed(result.stderr[-2000:])
        return {".bin.gz": gzip.compress(out.read_bytes(), compresslevel=6)}
