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
const READ_BYTES = 1 << 18;
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

/**
 * Reads a container from a ReadableStream of its bytes, front to back, without ever holding
 * it whole: `head()` first, then each blob in the order of its offset with `bytes(n)` (small
 * ones) or `pipe(n, sink)` (the memory, handed on piece by piece as it arrives; a piece is
 * valid during the call only). A byte stream (a fetch body) is read into one buffer of
 * READ_BYTES used again and again (a BYOB reader), so reading tens of MB leaves no garbage.
 */
export class ContainerReader {
  constructor(stream) {
    try {
      this.reader = stream.getReader({ mode: "byob" });
      this.buffer = new ArrayBuffer(READ_BYTES);
    } catch {
      this.reader = stream.getReader();  // not a byte stream
      this.buffer = null;
    }
    this.chunk = new Uint8Array(0);
    this.at = 0;
    this.position = 0;  // bytes of the container consumed
  }

  async #read() {
    const { value, done } = await (this.buffer ? this.reader.read(new Uint8Array(this.buffer)) : this.reader.read());
    if (this.buffer && value) this.buffer = value.buffer;  // the read hands the buffer back
    if (done || !value?.length) throw new Error("snapshot cut short");
    this.chunk = value;
    this.at = 0;
  }

  async pipe(n, sink) {
    while (n > 0) {
      if (this.at === this.chunk.length) await this.#read();
      const take = Math.min(n, this.chunk.length - this.at);
      sink(this.chunk.subarray(this.at, this.at + take));
      this.at += take;
      this.position += take;
      n -= take;
    }
  }

  async bytes(n) {
    const out = new Uint8Array(n);
    let filled = 0;
    await this.pipe(n, (part) => { out.set(part, filled); filled += part.length; });
    return out;
  }

  async skipTo(position) {
    if (position < this.position) throw new Error("snapshot blobs out of order");
    await this.pipe(position - this.position, () => {});
  }

  /** The header; throws on anything that is not a container. Leaves the reader at the
   * first blob, whose offset `start` it adds to the header's blob offsets. */
  async head() {
    const magic = new TextEncoder().encode(MAGIC);
    const first = await this.bytes(magic.length + 4);
    if (magic.some((b, i) => first[i] !== b)) throw new Error("not a cellhub snapshot");
    const headLength = new DataView(first.buffer).getUint32(magic.length, true);
    if (headLength > 1 << 24) throw new Error("snapshot header too long");
    const header = JSON.parse(new TextDecoder().decode(await this.bytes(headLength)));
    const start = Math.ceil((magic.length + 4 + headLength) / 8) * 8;
    await this.skipTo(start);
    for (const entry of Object.values(header.blobs ?? {})) entry[0] += start;
    return header;
  }

  /** The blobs named by `names`, in the container's order, as {name: bytes}. */
  async blobs(header, names) {
    const out = {};
    const wanted = names.map((name) => [name, header.blobs?.[name]]).sort((a, b) => a[1]?.[0] - b[1]?.[0]);
    for (const [name, entry] of wanted) {
      if (!entry) throw new Error(`snapshot blob ${name} missing`);
      await this.skipTo(entry[0]);
      out[name] = await this.bytes(entry[1]);
    }
    return out;
  }

  release() {
    this.reader.cancel().catch(() => {});
  }
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

const PAGE = 4096;
const STAGE = 1 << 16;

function allZero(words, from, to) {
  for (let i = from; i < to; i++) if (words[i] !== 0) return false;
  return true;
}

/** Write `bytes` (the memory from `base` on, both multiples of STAGE but the last) into the
 * instance's memory: XORed back with the fresh reference below its end; above it, a page
 * that is zero both in the snapshot and in the memory is left alone (never touched, so it
 * costs the tab no memory). */
function writeMemory(Module, bytes, base, fresh) {
  if (base < fresh.end) xorInto(bytes, fresh.bytes.subarray(base, Math.min(fresh.end, base + bytes.length)));
  const heap = Module.HEAPU8;
  const heapWords = new Uint32Array(heap.buffer);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  for (let p = 0; p < bytes.length; p += PAGE) {
    const end = Math.min(p + PAGE, bytes.length);
    const skip = base + p >= fresh.end && end % 4 === 0 && allZero(words, p >>> 2, end >>> 2)
      && allZero(heapWords, (base + p) >>> 2, (base + end) >>> 2);
    if (!skip) heap.set(bytes.subarray(p, end), base + p);
  }
}

/**
 * Read Pyodide's memory snapshot (`size` bytes) from `reader` into `Module`'s memory; returns
 * its header (what Pyodide's own restoreSnapshot reads, with no memory after it). `fresh`:
 * freshReference of this instance, already checked against the builder's.
 */
export async function streamMemory(reader, size, Module, fresh) {
  const lead = await reader.bytes(12);
  const headLength = new Uint32Array(lead.buffer, 0, 3)[1];
  if (headLength < 12 || headLength > size || headLength % 4) throw new Error("snapshot memory header broken");
  const header = new Uint8Array(headLength);
  header.set(lead);
  header.set(await reader.bytes(headLength - 12), 12);
  if (size - headLength > Module.HEAPU8.length) throw new Error("snapshot larger than the memory");
  const stage = new Uint8Array(STAGE);
  let filled = 0;
  let base = 0;
  await reader.pipe(size - headLength, (part) => {
    for (let i = 0; i < part.length;) {
      const take = Math.min(STAGE - filled, part.length - i);
      stage.set(part.subarray(i, i + take), filled);
      filled += take;
      i += take;
      if (filled === STAGE) {
        writeMemory(Module, stage, base, fresh);
        base += STAGE;
        filled = 0;
      }
    }
  });
  if (filled) writeMemory(Module, stage.subarray(0, filled), base, fresh);
  return header;
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
 * `restoring` (true in the page), `memory` (in the page: async (Module, fresh) => the
 * memory snapshot's header, after writing its memory into Module: see streamMemory).
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
    if (plan.restoring) settings.INITIAL_MEMORY = plan.memoryBytes;
    const Module = await createPyodideModule(settings);
    if (plan.restoring) {
      if (fresh.hash !== plan.reference.hash) {
        throw new Error(`fresh memory differs from the builder's (${fresh.hash}, not ${plan.reference.hash})`);
      }
      // The memory is written now; Pyodide's restoreSnapshot gets its header only.
      const header = await plan.memory(Module, fresh);
      fresh = null;
      const restore = Module.API.restoreSnapshot;
      Module.API.restoreSnapshot = () => {
        const config = restore(header);
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
