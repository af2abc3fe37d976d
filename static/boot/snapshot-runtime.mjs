// The memory snapshot's format and the hooks that make an interpreter restorable from it.
// Shared by the builder (server/snapshot_build.mjs, under Node.js) and the page
// (snapshot-boot.mjs, in the browser), so both lay out the interpreter the same way.
//
// Pyodide's own snapshot (loadPyodide's _makeSnapshot / _loadSnapshot) saves and restores the
// wasm linear memory and the JS references Python holds. It knows nothing of shared libraries
// loaded after start: their code lives in wasm instances and function-table slots, not in the
// memory. So both sides load the wheels' libraries (pydantic-core) themselves, in a preRun
// hook, before the runtime initialises: Emscripten then places each library's data at the
// start of the heap and its functions at a table base padded to a value the snapshot
// records. The same bytes and the same base give the same addresses in the builder and in
// every page, and Python's later dlopen finds the library already loaded by its path.
//
// Container (little endian): MAGIC, u32 length of a JSON header, the header, zero padding to
// a multiple of 8, then the blobs the header names by offset and length (relative to the
// first blob, each starting at a multiple of 8): the wheels' files (libraries included),
// Pyodide's lock file and Pyodide's memory snapshot.
//
// The memory's first `header.reference.end` bytes are stored XORed with the memory a fresh
// instance has before anything runs (the main module's data segments, which the page has
// anyway in pyodide.asm.wasm; see freshReference): they compress to almost nothing. The page
// takes the same reference, checks its hash against the builder's and XORs it back.

export const MAGIC = "cellhub-snapshot-1\n";
const TABLE_PAD = 64;

/** The table base the builder pads to: at least TABLE_PAD free slots above `length`. */
export function paddedTableBase(length) {
  return Math.ceil((length + TABLE_PAD) / TABLE_PAD) * TABLE_PAD;
}

/** Bytes of a container: `header` (a JSON-able object) and `blobs` ({name: Uint8Array});
 * the header gains `blobs: {name: [offset, length]}`. */
export function encodeContainer(header, blobs) {
  const index = {};
  let offset = 0;
  for (const [name, bytes] of Object.entries(blobs)) {
    index[name] = [offset, bytes.length];
    offset = Math.ceil((offset + bytes.length) / 8) * 8;  // Pyodide reads its snapshot as 32-bit words
  }
  const head = new TextEncoder().encode(JSON.stringify({ ...header, blobs: index }));
  const magic = new TextEncoder().encode(MAGIC);
  const start = Math.ceil((magic.length + 4 + head.length) / 8) * 8;
  const out = new Uint8Array(start + offset);
  out.set(magic, 0);
  new DataView(out.buffer).setUint32(magic.length, head.length, true);
  out.set(head, magic.length + 4);
  for (const [name, bytes] of Object.entries(blobs)) out.set(bytes, start + index[name][0]);
  return out;
}

/** `{header, blob(name)}` of a container; throws on anything that is not one. */
export function decodeContainer(bytes) {
  const magic = new TextEncoder().encode(MAGIC);
  if (bytes.length < magic.length + 4 || magic.some((b, i) => bytes[i] !== b)) {
    throw new Error("not a cellhub snapshot");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headLength = view.getUint32(magic.length, true);
  const headEnd = magic.length + 4 + headLength;
  if (headEnd > bytes.length) throw new Error("snapshot header cut short");
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(magic.length + 4, headEnd)));
  const start = Math.ceil(headEnd / 8) * 8;
  const blob = (name) => {
    const [offset, length] = header.blobs?.[name] ?? [];
    if (offset === undefined || start + offset + length > bytes.length) {
      throw new Error(`snapshot blob ${name} missing or cut short`);
    }
    return bytes.subarray(start + offset, start + offset + length);
  };
  return { header, blob };
}

/** FNV-1a over the 32-bit words of `bytes` (its length a multiple of 4), as 8 hex digits. */
export function wordHash(bytes) {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
  return (h >>> 0).toString(16).padStart(8, "0");
}

/** XOR `reference` into the start of `target` (in place; both lengths multiples of 4). */
export function xorInto(target, reference) {
  const t = new Uint32Array(target.buffer, target.byteOffset, reference.byteLength >>> 2);
  const r = new Uint32Array(reference.buffer, reference.byteOffset, reference.byteLength >>> 2);
  for (let i = 0; i < r.length; i++) t[i] ^= r[i];
}

/**
 * The memory of a fresh instance before anything has run in it (the first preRun hook):
 * the main module's data segments, zero above them. `end`: its length (null: up to the
 * last non-zero byte, rounded up to 64 KiB, as the builder records it). The word of the
 * wasm call trampoline, which a browser may set at instantiation, is zeroed: it is
 * written afterwards anyway. Returns {bytes, end, hash}.
 */
export function freshReference(Module, end = null) {
  const heap = Module.HEAPU8;
  if (end === null) {
    let last = Math.min(heap.length, 64 << 20) - 1;
    while (last > 0 && heap[last] === 0) last--;
    end = Math.ceil((last + 1) / 65536) * 65536;
  }
  const bytes = heap.slice(0, end);
  const at = trampolineAddress(Module);
  if (at + 4 <= end) bytes.fill(0, at, at + 4);
  return { bytes, end, hash: wordHash(bytes) };
}

function trampolineAddress(Module) {
  return Module.__PyRuntime + Module.HEAP32[Module.__PyEM_EMSCRIPTEN_TRAMPOLINE_OFFSET / 4];
}

/**
 * Make `createPyodideModule` (pyodide.asm.mjs's default export) lay out the interpreter for a
 * snapshot. `plan`: `libs` ([{path, module}], compiled wasm), `files` ([{path, bytes}] written
 * under site-packages), `tableBase` (null: pad and record it in `plan.tableBase`),
 * `memoryBytes` (grow the memory to this before anything runs), `handles` ([[handle, path]]
 * of dlopen, restored after the memory), `reference` ({end, hash} the memory was XORed
 * with, see freshReference; null in the builder, which records it in `plan.reference`),
 * `restoring` (true in the page).
 * Returns the wrapped function for loadPyodide's `createPyodideModule` option.
 */
export function snapshotModuleFactory(createPyodideModule, plan) {
  let trampoline = null;
  let fresh = null;
  const preRun = (Module) => {
    fresh = freshReference(Module, plan.reference?.end ?? null);
    if (!plan.restoring) plan.reference = { end: fresh.end, hash: fresh.hash, bytes: fresh.bytes };
    if (plan.memoryBytes) Module.growMemory(plan.memoryBytes);
    const table = Module.wasmTable;
    const base = plan.tableBase ?? paddedTableBase(table.length);
    if (table.length > base) throw new Error(`function table too long for the snapshot (${table.length} > ${base})`);
    table.grow(base - table.length);
    plan.tableBase = base;
    for (const lib of plan.libs) {
      const dso = Module.newDSO(lib.path, undefined, "loading");
      dso.refcount = Infinity;
      dso.global = false;
      dso.exports = Module.loadWebAssemblyModule(lib.module, { loadAsync: false, nodelete: true }, lib.path, {});
    }
    const site = Module.API.sitePackages;
    for (const file of plan.files) {
      const target = `${site}/${file.path}`;
      Module.FS.mkdirTree(target.slice(0, target.lastIndexOf("/")));
      Module.FS.writeFile(target, file.bytes, { canOwn: true });
    }
    // The wasm call trampoline Pyodide made for this browser (0 where it has none); the
    // snapshot holds the builder's, written back over it after the memory is restored.
    const at = trampolineAddress(Module);
    trampoline = [at, Module.HEAP32[at / 4]];
  };
  return async (settings) => {
    settings.preRun.push(preRun);
    const Module = await createPyodideModule(settings);
    if (plan.restoring) {
      const restore = Module.API.restoreSnapshot;
      Module.API.restoreSnapshot = (snapshot) => {
        if (fresh.hash !== plan.reference.hash) {
          throw new Error(`fresh memory differs from the builder's (${fresh.hash}, not ${plan.reference.hash})`);
        }
        const heapStart = new Uint32Array(snapshot.buffer, snapshot.byteOffset, 3)[1];
        xorInto(snapshot.subarray(heapStart), fresh.bytes);
        fresh = null;
        const config = restore(snapshot);
        Module.HEAP32[trampoline[0] / 4] = trampoline[1];
        for (const [handle, path] of plan.handles ?? []) {
          const dso = Module.LDSO.loadedLibsByName[path];
          if (!dso) throw new Error(`snapshot names a library that is not loaded: ${path}`);
          Module.LDSO.loadedLibsByHandle[handle] = dso;
        }
        return config;
      };
    }
    return Module;
  };
}

/** `[[handle, path]]` of the libraries Python holds dlopen handles to (not the main module). */
export function dlopenHandles(Module) {
  return Object.entries(Module.LDSO.loadedLibsByHandle)
    .filter(([handle]) => handle !== "0")
    .map(([handle, dso]) => [handle, dso.name]);
}

/**
 * Zero what the snapshot need not carry, so that it compresses: the stack below its pointer
 * (nothing runs) and the heap's free chunks (taken with malloc, zeroed, given back). Never
 * grows the memory: a request is made only when it fits below the end whatever malloc does.
 */
export function zeroFreeMemory(Module) {
  const sbrkEnd = () => Module.HEAPU32[Module._emscripten_get_sbrk_ptr() / 4];
  Module.HEAP8.fill(0, Module._emscripten_stack_get_end(), Module._emscripten_stack_get_current() - 64);
  const held = [];
  for (let size = 1 << 22; size >= 16; size >>= 1) {
    while (sbrkEnd() + size + 65536 < Module.HEAP8.length) {
      const p = Module._malloc(size);
      if (!p) break;
      Module.HEAP8.fill(0, p, p + size);
      held.push(p);
    }
  }
  for (const p of held) Module._free(p);
}
