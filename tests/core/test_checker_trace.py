"""``app.trace_scenario``: the fixed scenario whose trace e2e/test_core_in_pyodide.py
compares between Pyodide and CPython must itself be deterministic and show the core's
semantics (so that equal traces mean equal behaviour)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from app.trace_scenario import MACHINE_EVENTS, run_trace

ROOT = Path(__file__).resolve().parents[2]


def test_the_trace_does_not_depend_on_hash_seeds_or_runs():
    here = run_trace()
    assert run_trace() == here
    code = "import json; from app.trace_scenario import run_trace; print(json.dumps(run_trace()))"
    for seed in ("0", "4242"):
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        assert json.loads(done.stdout) == here, seed


def _after(lines: list[str], marker: str, n: int) -> list[str]:
    i = lines.index(marker)
    return lines[i + 1:i + 1 + n]


def test_the_trace_shows_store_hook_and_machine_semantics():
    lines = run_trace()
    store = [line[len("store: "):] for line in lines if line.startswith("store: ")]
    hooks = [line[len("hooks: "):] for line in lines if line.startswith("hooks: ")]
    machine = [line[len("machine: "):] for line in lines if line.startswith("machine: ")]
    # An equal write runs nothing; a batch runs each effect once, after the batch.
    assert _after(store, "write b=4 (equal)", 1) == ["write a=30"]
    assert _after(store, "batch a=4 b=4", 1) == ["inside batch"]
    assert store.count("e2 parity=even") == 1 and "e2 parity=odd" in store
    # A cleanup runs before the effect's next run; a disposed scope runs its cleanups, then nothing.
    assert _after(store, "write a=3", 3) == ["compute total", "e1 cleanup total=3", "e1 total=5"]
    assert _after(store, "write a=1 after dispose", 2) == ["compute total", "total now 5"]
    assert store[-1] == "error in effect: ValueError"
    # A state set inside an effect re-renders after the commit, never inside it.
    assert _after(hooks, "effect count=1", 1) == ["render #3 count=1 label=b doubled=2"]
    assert hooks[-3:] == ["cleanup count=2", "cleanup label=b", "renders 4"]
    assert len(machine) == len(MACHINE_EVENTS) + 1
    assert any(line.startswith("lock granted: downloading -> delivering | unmark undelivered job-1; "
                               "mark claimed job-1; post download-claimed job-1@5; download job-1") for line in machine)
    assert any(line.startswith("the server records the download: delivering -> downloaded | mark downloaded job-1; "
                               "post downloaded") for line in machine)
    assert any(line.startswith("completion while cancelling (ignored): ignored") for line in machine)
