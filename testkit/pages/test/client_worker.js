// Starts the PyScript worker of client_worker.py (no Python on this page's main thread) and
// asks it to export: the hub is this page's origin (the worker's too); the token and the project come in the
// URL's fragment (#token=...&project=...), which is never sent to the server.
import { PyWorker } from "/static/vendor/pyscript/0.7.31/core.js";

const params = new URLSearchParams(location.hash.slice(1));
try {
  // PyScript 0.7.31's PyWorker reads its "py" hooks (those that put the `pyscript` package into
  // the worker) without waiting for them: it awaits the plugin loader function itself, not its
  // promise. The hooks are in place once PyScript has defined its <py-script> element.
  await customElements.whenDefined("py-script");
  // The page's vendored Pyodide: a worker made from JS takes its interpreter as `version`.
  const version = new URL("/static/vendor/pyodide/314.0.7/pyodide.mjs", location.href).href;
  // async: the worker's code awaits at top level (it installs the client as a notebook would).
  const worker = await PyWorker("/test-pages/test/client_worker.py",
                                { config: "/test-pages/test/client_worker.toml", version, async: true });
  const report = await worker.sync.export_project(params.get("token"), Number(params.get("project")));
  document.getElementById("result").textContent = report;
  document.body.dataset.ready = "true";
} catch (error) {
  document.getElementById("error").textContent = String(error && error.stack || error);
  document.body.dataset.ready = "error";
}
