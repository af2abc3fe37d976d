// The page's loadPyodide: restore the build's memory snapshot (snapshot-runtime.mjs) when the
// server offers one, else, or when anything about it fails, boot Pyodide as it ships. The
// path taken is left in document.body.dataset.boot ("snapshot" or "fallback", with the
// reason in data-boot-reason) and in globalThis.cellhubBoot.path, where app.browser.boot
// reads it. The server's /boot/pyodide.mjs (server/routes/snapshot.py) calls bootPyodide.
import { ContainerReader, snapshotModuleFactory, streamMemory } from "./snapshot-runtime.mjs";

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

// The memory is made this much larger than the snapshot's at once: the page's first work
// after the restore then fits without growing it (a wasm memory that grows is copied to a new
// mapping, and the old one stays resident until a garbage collection). Never-touched pages
// cost no memory.
const HEADROOM_BYTES = 16 << 20;

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

/** The snapshot's response (the one index.html requested early, else a new request), or
 * null when there is none or it is not served. Its body is read later, as it is used. */
async function snapshotResponse(url) {
  const pending = globalThis.cellhubBoot?.snapshot ?? (url ? fetch(url) : null);
  if (globalThis.cellhubBoot) globalThis.cellhubBoot.snapshot = null;
  const response = await pending;
  return response?.ok && response.body ? response : null;
}

async function restore(pyodide, { indexURL, memory, stdlib }, response, options) {
  const reader = new ContainerReader(response.body);
  try {
    const header = await reader.head();
    if (header.pyodide !== pyodide.version) throw new Error(`snapshot of Pyodide ${header.pyodide}, not ${pyodide.version}`);
    const sitePaths = [...header.libs, ...header.files].map((path) => `site/${path}`);
    const [{ default: createPyodideModule }, blobs] = await Promise.all([
      import(`${indexURL}pyodide.asm.mjs`),
      reader.blobs(header, [...sitePaths, "lock"]),
    ]);
    const plan = {
      libs: await Promise.all(header.libs.map(async (path) => ({
        path: `${header.sitePackages}/${path}`, module: await WebAssembly.compile(blobs[`site/${path}`]) }))),
      files: header.files.map((path) => ({ path, bytes: blobs[`site/${path}`] })),
      tableBase: header.tableBase,
      memoryBytes: header.memoryBytes + HEADROOM_BYTES,
      reference: header.reference,
      handles: header.handles,
      restoring: true,
      // The memory blob, served on its own: requested once the instance exists and read
      // straight into it, never whole in JS (snapshot-runtime.mjs streamMemory).
      memory: async (Module, fresh) => {
        const answer = await fetch(memory);
        if (!answer.ok || !answer.body) throw new Error(`snapshot memory not served (${answer.status})`);
        const memoryReader = new ContainerReader(answer.body);
        try {
          return await streamMemory(memoryReader, header.blobs.memory[1], Module, fresh);
        } finally {
          memoryReader.release();
        }
      },
    };
    const py = await pyodide.loadPyodide({
      ...options,
      indexURL,
      stdLibURL: stdlib,
      lockFileContents: JSON.parse(new TextDecoder().decode(blobs.lock)),
      _loadSnapshot: new Uint8Array(4),  // a stand-in: the factory writes the memory itself
      createPyodideModule: snapshotModuleFactory(createPyodideModule, plan),
    });
    plan.files = [];
    plan.libs = [];
    py.runPython(AFTER_RESTORE);
    return py;
  } finally {
    reader.release();
  }
}

/** loadPyodide for `options` (PyScript's): from the snapshot at `snapshot` (null: none
 * offered), its memory at `memory`, with the standard library zip at `stdlib` (the modules
 * the snapshot holds left out), else as Pyodide ships, from `indexURL` (the vendored
 * Pyodide's folder). */
export async function bootPyodide(pyodide, { indexURL, snapshot, memory, stdlib }, options = {}) {
  let reason = "none offered";
  try {
    const response = await snapshotResponse(snapshot);
    if (response) {
      const py = await restore(pyodide, { indexURL, memory, stdlib }, response, options);
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
