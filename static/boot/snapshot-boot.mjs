// The page's loadPyodide: restore the build's memory snapshot (snapshot-runtime.mjs) when the
// server offers one, else, or when anything about it fails, boot Pyodide as it ships. The
// path taken is left in document.body.dataset.boot ("snapshot" or "fallback", with the
// reason in data-boot-reason) and in globalThis.cellhubBoot.path, where app.browser.boot
// reads it. The server's /boot/pyodide.mjs (server/routes/snapshot.py) calls bootPyodide.
import { decodeContainer, snapshotModuleFactory } from "./snapshot-runtime.mjs";

// Run in the restored interpreter before it is handed over: the standard library zip is the
// page's (without the modules the snapshot holds), so zipimport's cached directory of the
// builder's is dropped before anything is imported from it; what differs per page load (the
// random module's state, the time zone) is taken afresh, and a validation through
// pydantic-core proves that its functions sit where the memory expects them.
const AFTER_RESTORE = `
import sys, time, zipimport
zipimport._zip_directory_cache.clear()
sys.path[:] = list(dict.fromkeys(sys.path))
if "random" in sys.modules:
    sys.modules["random"].seed()
if hasattr(time, "tzset"):
    time.tzset()
import pydantic
assert pydantic.TypeAdapter(list[int]).validate_python(["1", 2]) == [1, 2]
`;

function mark(path, reason) {
  globalThis.cellhubBoot = globalThis.cellhubBoot ?? {};
  globalThis.cellhubBoot.path = path;
  const apply = () => {
    document.body.dataset.boot = path;
    if (reason) document.body.dataset.bootReason = reason;
  };
  if (globalThis.document?.body) apply();
  else globalThis.addEventListener?.("DOMContentLoaded", apply, { once: true });
}

async function snapshotBytes(url) {
  const pending = globalThis.cellhubBoot?.snapshot ?? (url ? fetch(url).then((r) => (r.ok ? r.arrayBuffer() : null)) : null);
  if (globalThis.cellhubBoot) globalThis.cellhubBoot.snapshot = null;  // a promise keeps its ~40 MB result
  const buffer = await pending;
  return buffer ? new Uint8Array(buffer) : null;
}

async function restore(pyodide, { indexURL, stdlib }, bytes, options) {
  const { header, blob } = decodeContainer(bytes);
  if (header.pyodide !== pyodide.version) throw new Error(`snapshot of Pyodide ${header.pyodide}, not ${pyodide.version}`);
  const [{ default: createPyodideModule }, libs] = await Promise.all([
    import(`${indexURL}pyodide.asm.mjs`),
    Promise.all(header.libs.map(async (path) => ({
      path: `${header.sitePackages}/${path}`, module: await WebAssembly.compile(blob(`site/${path}`)) }))),
  ]);
  const plan = {
    libs,
    // Copies: a file must not keep the whole container alive.
    files: header.files.map((path) => ({ path, bytes: blob(`site/${path}`).slice() })),
    tableBase: header.tableBase,
    memoryBytes: header.memoryBytes,
    reference: header.reference,
    handles: header.handles,
    restoring: true,
  };
  const py = await pyodide.loadPyodide({
    ...options,
    indexURL,
    stdLibURL: stdlib,
    lockFileContents: JSON.parse(new TextDecoder().decode(blob("lock"))),
    _loadSnapshot: blob("memory"),
    createPyodideModule: snapshotModuleFactory(createPyodideModule, plan),
  });
  // Pyodide keeps its options: drop the ~40 MB the restore no longer needs, and free them now
  // (detached, not left to a garbage collection that an idle tab may not run for long).
  delete py._api.config._loadSnapshot;
  plan.files = [];
  plan.libs = [];
  bytes.buffer.transfer?.(0);
  py.runPython(AFTER_RESTORE);
  return py;
}

/** loadPyodide for `options` (PyScript's): from the snapshot at `snapshot` (null: none
 * offered) with the standard library zip at `stdlib` (the modules the snapshot holds left
 * out), else as Pyodide ships, from `indexURL` (the vendored Pyodide's folder). */
export async function bootPyodide(pyodide, { indexURL, snapshot, stdlib }, options = {}) {
  let reason = "none offered";
  try {
    const bytes = await snapshotBytes(snapshot);
    if (bytes) {
      const py = await restore(pyodide, { indexURL, stdlib }, bytes, options);
      mark("snapshot");
      return py;
    }
    if (snapshot) reason = "not served";
  } catch (error) {
    reason = String(error?.message ?? error).split("\n")[0].slice(0, 200);
    console.warn(`[cellhub] memory snapshot not used, booting without it: ${reason}`);
  }
  mark("fallback", reason);
  return pyodide.loadPyodide({ ...options, indexURL });
}
