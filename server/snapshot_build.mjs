// Builds the page's memory snapshot (server/snapshot.py runs it with Node.js):
//   node snapshot_build.mjs PYODIDE_DIR SITE_DIR APP_ZIP OUT
// PYODIDE_DIR: the vendored Pyodide; SITE_DIR: the wheels' files as they lie in
// site-packages; APP_ZIP: the app package the page unpacks into ./app; OUT: the container
// (static/boot/snapshot-runtime.mjs) to write; OUT.stdlib.json: the standard library's
// files whose modules the snapshot holds (server/snapshot.py leaves them out of the page's
// standard library zip). Boots Pyodide as the page's snapshot path will, loads the wheels,
// imports every app module, and snapshots the memory.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [pyodideDir, siteDir, appZip, out] = process.argv.slice(2);
// Errors are printed as their message and stack only (Node would also print the line of
// minified source where they were thrown: a megabyte of pyodide.asm.mjs).
process.on("uncaughtException", (e) => { console.error(String(e?.stack ?? e).slice(0, 4000)); process.exit(1); });
process.on("unhandledRejection", (e) => { console.error(String(e?.stack ?? e).slice(0, 4000)); process.exit(1); });
const runtime = await import(new URL("../static/boot/snapshot-runtime.mjs", import.meta.url).href);
const { loadPyodide, version } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const { default: createPyodideModule } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.asm.mjs")).href);

function walk(dir, prefix = "") {
  return fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name)).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name), `${prefix}${e.name}/`)
      : [{ path: `${prefix}${e.name}`, bytes: new Uint8Array(fs.readFileSync(path.join(dir, e.name))) }]);
}

const siteFiles = walk(siteDir);
const libFiles = siteFiles.filter((f) => f.path.endsWith(".so"));

const sitePackages = "/lib/python3.14/site-packages";
const plan = {
  libs: await Promise.all(libFiles.map(async (f) => ({ path: `${sitePackages}/${f.path}`, module: await WebAssembly.compile(f.bytes) }))),
  // The builder also needs the libraries as files: Python's import finds an extension by its file.
  files: siteFiles.map((f) => ({ path: f.path, bytes: f.bytes.slice() })),
  tableBase: null,
  reference: null,
  restoring: false,
};
const py = await loadPyodide({
  indexURL: pyodideDir + path.sep,
  _makeSnapshot: true,
  // The page's values (a browser has no argv): Node's would name this script.
  _sysExecutable: "./this.program",
  createPyodideModule: runtime.snapshotModuleFactory(createPyodideModule, plan),
  stdout: () => {},
});
if (py._api.sitePackages !== sitePackages) throw new Error(`site-packages is ${py._api.sitePackages}`);
py.FS.mkdirTree("/home/pyodide");
py.unpackArchive(new Uint8Array(fs.readFileSync(appZip)), "zip", { extractDir: "/home/pyodide/app" });
const imported = py.runPython(`
import gc, importlib, os, sys
# As app.browser.boot does before pydantic loads (the page installs no pydantic plugins).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
names = sorted(
    os.path.splitext(os.path.join(root, f))[0].replace(os.sep, ".").removesuffix(".__init__")
    for root, _, files in os.walk("app") for f in files if f.endswith(".py"))
for name in names:
    importlib.import_module(name)
# What the first render and the first click validate, so their lazy set-up is done too.
from app.models import ExportOptions
ExportOptions.model_validate(ExportOptions().model_dump(mode="json"))
del name, names, ExportOptions
gc.collect()
# The sources of the modules imported here are in the snapshot as code: the page needs the
# files only of what it may import later.
site = "${sitePackages}/"
def held(prefix):
    return sorted({m.__file__[len(prefix):] for m in list(sys.modules.values())
                   if isinstance(getattr(m, "__file__", None), str) and m.__file__.startswith(prefix)})
imported = held(site)
stdlib = held(next(p for p in sys.path if p.endswith(".zip")) + "/")
del site, held
import json
json.dumps([len(sys.modules), imported, stdlib])
`);
const [moduleCount, importedFiles, importedStdlib] = JSON.parse(imported);
// Pyodide registered the wheels it found in site-packages as loaded packages; its snapshot
// wants that registry empty (the page's Pyodide fills it again from the same files).
for (const name of Object.keys(py.loadedPackages)) delete py.loadedPackages[name];
const pageFiles = siteFiles.filter((f) => !f.path.endsWith(".so") && !importedFiles.includes(f.path));
runtime.zeroFreeMemory(py._module);
const memory = py.makeMemorySnapshot();
// The start of the memory as it differs from a fresh instance's (snapshot-runtime.mjs).
runtime.xorInto(memory.subarray(new Uint32Array(memory.buffer, memory.byteOffset, 3)[1]), plan.reference.bytes);
const container = runtime.encodeContainer({
  pyodide: version,
  sitePackages,
  tableBase: plan.tableBase,
  memoryBytes: memory.length,
  reference: { end: plan.reference.end, hash: plan.reference.hash },
  handles: runtime.dlopenHandles(py._module),
  libs: libFiles.map((f) => f.path),
  files: pageFiles.map((f) => f.path),
  modules: moduleCount,
}, {
  ...Object.fromEntries([...libFiles, ...pageFiles].map((f) => [`site/${f.path}`, f.bytes])),
  // The page hands it to loadPyodide instead of fetching it.
  lock: new Uint8Array(fs.readFileSync(path.join(pyodideDir, "pyodide-lock.json"))),
  memory,
});
fs.writeFileSync(out, container);
fs.writeFileSync(`${out}.stdlib.json`, JSON.stringify(importedStdlib));
