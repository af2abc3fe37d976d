// P3 runner (pyodide.html): loads the Pyodide module named by ?interpreter=.
const url = new URLSearchParams(location.search).get("interpreter");
if (!url || !url.startsWith("/static/vendor/pyodide/")) throw new Error("?interpreter= must name the vendored pyodide.mjs");
const { loadPyodide } = await import(url);
window.benchPyodide = await loadPyodide({ indexURL: new URL(".", new URL(url, location.href)).href });
document.body.dataset.ready = "true";
