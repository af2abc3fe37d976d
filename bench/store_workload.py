"""The P3 workload, for ``app.store`` and for reaktiv, in plain Python (stdlib only).

This file also runs inside Pyodide (the bench writes it into the browser's file system), so
it imports nothing from ``bench`` and nothing outside the standard library at module level.

Workload (the same graph for both libraries): one source signal ``s``; ``n`` computeds
``c_i = s * (i + 1) + i``; ``n`` effects, effect ``i`` reads ``c_i`` and adds it to a sum.
Then ``writes`` writes ``s = 1, 2, ...``; each write makes every computed change, so every
effect runs once per write. Time per write covers the write, the ``n`` recomputations and
the ``n`` effect runs (graph construction is not timed). The run counts are checked, so both
libraries do the same work.
"""
from __future__ import annotations

import gc
import time
from typing import Callable


def _term(read: Callable[[], int], i: int) -> Callable[[], int]:
    """``read() * (i + 1) + i`` as a function of no arguments (reaktiv inspects arity)."""

    def term() -> int:
        return read() * (i + 1) + i

    return term


def _graph_app_store(n: int) -> tuple[Callable[[int], None], list[int], Callable[[], None]]:
    from app import store

    s = store.signal(0)
    runs = [0]
    disposers = []
    def make_effect(c):
        def eff() -> None:
            c.value
            runs[0] += 1

        return eff

    for i in range(n):
        c = store.computed(_term(lambda: s.value, i))
        disposers.append(store.effect(make_effect(c)))

    def write(v: int) -> None:
        s.value = v

    def dispose() -> None:
        for d in disposers:
            d()

    return write, runs, dispose


def _graph_reaktiv(n: int) -> tuple[Callable[[int], None], list[int], Callable[[], None]]:
    import reaktiv

    s = reaktiv.signal(0)
    runs = [0]
    keep = []  # reaktiv holds effects weakly: keep them alive for the run
    def make_effect(c):
        # A closure, not a default argument: reaktiv passes ``on_cleanup`` to any function
        # that takes a parameter.
        def eff() -> None:
            c()
            runs[0] += 1

        return eff

    for i in range(n):
        c = reaktiv.computed(_term(s, i))
        keep.append((c, reaktiv.effect(make_effect(c))))

    def dispose() -> None:
        for _, e in keep:
            e.dispose()

    return s.set, runs, dispose


def _graph_reaktiv_unlocked(n: int):
    import reaktiv

    reaktiv.set_thread_safety(False)
    return _graph_reaktiv(n)


GRAPHS = {"app.store": _graph_app_store, "reaktiv": _graph_reaktiv,
          "reaktiv (thread safety off)": _graph_reaktiv_unlocked}


def measure(lib: str, n: int, writes: int) -> float:
    """Microseconds per write of the workload above with ``n`` computeds and ``n`` effects
    over ``writes`` writes, for ``lib`` (a key of ``GRAPHS``). Raises ``AssertionError`` if the
    effects did not run exactly ``n`` times per write (plus their first run)."""
    import reaktiv

    reaktiv.set_thread_safety(True)  # the library's default; only the "off" variant turns it off
    write, runs, dispose = GRAPHS[lib](n)
    try:
        gc.collect()
        start = time.perf_counter()
        for v in range(1, writes + 1):
            write(v)
        elapsed = time.perf_counter() - start
        assert runs[0] == n * (writes + 1), (lib, n, writes, runs[0])
    finally:
        dispose()
        reaktiv.set_thread_safety(True)
    return elapsed / writes * 1e6
