"""P3: reactive store throughput, ``app.store`` vs reaktiv on the same workload.

The workload is ``bench/store_workload.py`` (one signal, n computeds, n effects; every write
re-runs all of them). In CPython both libraries run in this process, interleaved, several
runs each. In Pyodide (optional; ``--no-pyodide`` skips it) the same file, the ``app/store/``
package and reaktiv's own source files are written into the file system of a Pyodide page of the
same server (``testkit/pages/bench/pyodide.html``, the export page's Pyodide) and run there; that
part is informational (the target is about CPython).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchResult, Row, Summary, alternate, interpreter_url
from bench.store_workload import measure

# writes per run, per n: each run takes roughly the same time
WRITES = {1: 20000, 10: 4000, 100: 400}
PROFILES = {"full": {"runs": 7, "scale": 1.0, "pyodide_runs": 5},
            "quick": {"runs": 3, "scale": 0.25, "pyodide_runs": 2},
            "tiny": {"runs": 1, "scale": 0.01, "pyodide_runs": 0}}
LIBS = ["app.store", "reaktiv", "reaktiv (thread safety off)"]


def _writes(n: int, scale: float) -> int:
    return max(10, int(WRITES[n] * scale))


def _python_files() -> dict[str, str]:
    """Sources to write into Pyodide's file system: path there -> text."""
    import reaktiv

    files = {"app/__init__.py": (ROOT / "app" / "__init__.py").read_text(),
             "store_workload.py": (ROOT / "bench" / "store_workload.py").read_text()}
    for path in sorted((ROOT / "app" / "store").glob("*.py")):
        files[f"app/store/{path.name}"] = path.read_text()
    pkg = Path(reaktiv.__file__).parent
    for path in sorted(pkg.glob("*.py")):
        files[f"reaktiv/{path.name}"] = path.read_text()
    return files


PYODIDE_RUN_JS = """async ([files, plan]) => {
  const py = window.benchPyodide;
  for (const [path, text] of Object.entries(files)) {
    const full = '/bench_py/' + path;
    py.FS.mkdirTree(full.slice(0, full.lastIndexOf('/')));
    py.FS.writeFile(full, text);
  }
  py.globals.set('plan_json', JSON.stringify(plan));
  return py.runPython(`
import json, sys
if '/bench_py' not in sys.path:
    sys.path.insert(0, '/bench_py')
import store_workload
out = []
for lib, n, writes, keep in json.loads(plan_json):
    us = store_workload.measure(lib, n, writes)
    if keep:
        out.append([lib, n, us])
json.dumps({'version': sys.version.split()[0], 'samples': out})
`);
}"""


def _pyodide(env: Any, runs: int, scale: float) -> dict:
    server, browser = env.server, env.browser
    context = browser.browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{server.base_url}/test-pages/bench/pyodide.html?interpreter={interpreter_url()}")
        page.wait_for_selector("body[data-ready='true']", timeout=180_000, state="attached")
        plan = []
        for run in range(-1, runs):  # run -1: warm-up (wasm tiers up, caches fill), not kept
            for n in WRITES:
                libs = LIBS[:2] if run % 2 == 0 else LIBS[1::-1]
                plan.extend([lib, n, _writes(n, scale), run >= 0] for lib in libs)
        page.set_default_timeout(600_000)
        return json.loads(page.evaluate(PYODIDE_RUN_JS, [_python_files(), plan]))
    finally:
        context.close()


def run(profile: str, env: Any) -> BenchResult:
    """Measure P3 (``profile``: full, quick or tiny); the Pyodide part uses ``env``'s server
    and browser unless ``env.pyodide`` is false (a failure there becomes a note)."""
    params = PROFILES[profile]
    runs, scale = params["runs"], params["scale"]
    samples: dict[tuple[str, int], list[float]] = {(lib, n): [] for lib in LIBS for n in WRITES}
    for n in WRITES:
        for lib in LIBS:  # warm-up, not kept
            measure(lib, n, _writes(n, scale))
        alternate(LIBS, runs, lambda lib, _r, n=n: samples[(lib, n)].append(measure(lib, n, _writes(n, scale))))
    result = BenchResult("P3", "Reactive store: time per signal write with n computeds and n effects", {
        "workload": "1 signal -> n computeds (c_i = s*(i+1)+i) -> n effects (effect i reads c_i); "
                    "every write changes all of them (bench/store_workload.py)",
        "n": ", ".join(map(str, WRITES)),
        "writes per run": ", ".join(f"n={n}: {_writes(n, scale)}" for n in WRITES),
        "runs": runs, "interpreter": "CPython in the bench process (plus Pyodide in Chromium, informational)",
    })
    for n in WRITES:
        mine = Summary.of(samples[("app.store", n)])
        result.rows.append(Row(f"CPython, n={n}", "us/write", mine, Summary.of(samples[("reaktiv", n)]),
                               "reaktiv").judge(max_ratio=1.0))
        result.rows.append(Row(f"CPython, n={n}, vs reaktiv without locks", "us/write", mine,
                               Summary.of(samples[("reaktiv (thread safety off)", n)]),
                               "reaktiv, set_thread_safety(False)").judge())
    result.notes.append("ratio <= 1.00x means app.store needs at most reaktiv's time per write, "
                        "i.e. at least its throughput (writes/s = 1e6 / us per write).")
    result.notes.append("reaktiv on CPython 3.11 spends much of each write in isinstance() checks against "
                        "runtime-checkable Protocols (typing._get_protocol_attrs, seen with cProfile); "
                        "Python 3.12+ makes those checks cheaper, so the margin may shrink there "
                        "(the Pyodide rows run Python 3.14).")
    if env.pyodide and params["pyodide_runs"]:
        try:
            out = _pyodide(env, params["pyodide_runs"], scale)
        except Exception as exc:  # noqa: BLE001 - optional part: say why it is missing
            result.notes.append(f"Pyodide part skipped: {type(exc).__name__}: {exc}")
        else:
            by: dict[tuple[str, int], list[float]] = {}
            for lib, n, us in out["samples"]:
                by.setdefault((lib, n), []).append(us)
            for n in WRITES:
                result.rows.append(Row(f"Pyodide (Python {out['version']}), n={n}", "us/write",
                                       Summary.of(by[("app.store", n)]), Summary.of(by[("reaktiv", n)]),
                                       "reaktiv in Pyodide").judge())
            result.versions["chromium"] = env.browser.version
            result.versions["pyodide python"] = out["version"]
    else:
        result.notes.append("Pyodide part skipped (--no-pyodide or tiny profile).")
    return result
