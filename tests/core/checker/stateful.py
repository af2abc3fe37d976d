"""The checker as a hypothesis ``RuleBasedStateMachine``: 1-3 tabs in one browser or two
(separate storage, channel bus and lock manager each), the fake server and clock of one
``World``, driven by the moves of ``Sim``.

Rules: deliver the oldest pending step, deliver any pending step, fire the next timer
(time passes), and one rule per environment move of ``sim`` (user clicks, worker events,
socket faults and lost/duplicated/reordered frames, tab close/reload/open, corrupt
storage, injected 503s and timeouts, a download that never reaches the server), each
limited by ``BUDGET`` per example. After every
rule the per-move invariants must hold (``Sim.apply`` checks them); ``teardown`` runs the
world fairly to quiescence (``search.finish``) and checks I3/I4. A failure's message is the
readable trace of the example (shrunk by hypothesis).
"""
from __future__ import annotations

from typing import Optional

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from .search import Counterexample, finish, render_trace, shrink
from .sim import Move, Scenario, Sim

BUDGET = dict(slowpoll=2, start=2, cancel=2, download=1, show=1, run=1, progress=2, complete=1, fail=1, drop=1, lose=1,
              dup=1, swap=1, close=1, reload=1, open=1, corrupt=1, fault=2, wait=1, dlfail=1)

STATS = {"examples": 0, "moves": 0, "finish_moves": 0, "downloads": 0, "cancels": 0, "max_tabs": 0}
"""Counters over every example run in this process (printed by the test)."""


class ExportChecker(RuleBasedStateMachine):
    """See module doc."""

    def __init__(self) -> None:
        super().__init__()
        self.sim: Optional[Sim] = None

    @initialize(tabs=st.integers(1, 3), fallback=st.sampled_from([False, False, False, True]),
                two_browsers=st.sampled_from([False, False, True]))
    def open_world(self, tabs: int, fallback: bool, two_browsers: bool) -> None:
        # With two browsers the last tab opened first is the second browser's (C10).
        browsers = ("b1",) * (tabs - 1) + ("b2",) if two_browsers and tabs > 1 else ()
        self.sim = Sim(Scenario.make("hypothesis", tabs=tabs, fallback=fallback, browsers=browsers, **BUDGET))
        STATS["examples"] += 1
        self._assert_ok()

    # -------------------------------------------------------------- helpers
    def _moves(self, kind: Optional[str] = None) -> list[Move]:
        assert self.sim is not None
        return [m for m in self.sim.moves() if kind is None or m.kind == kind]

    def _apply(self, move: Move) -> None:
        assert self.sim is not None
        STATS["moves"] += 1
        self.sim.apply(move)
        STATS["max_tabs"] = max(STATS["max_tabs"], len(self.sim.open_tabs()))
        self._assert_ok()

    def _assert_ok(self) -> None:
        assert self.sim is not None
        if self.sim.violations:
            raise AssertionError(self._report())

    def _report(self) -> str:
        """The violation, the example's trace, and the same trace shrunk by replaying it
        without one move at a time (``search.shrink``; hypothesis' own shrinking is off)."""
        sim = self.sim
        assert sim is not None
        lines = [f"violation: {sim.violations[0]}", f"trace of the example ({len(sim.trace)} lines):"]
        lines += render_trace(sim.trace)
        moves = [t for t in sim.trace if not t.startswith(("setup: ", "fair: "))]
        small = shrink(sim.scenario, Counterexample(sim.scenario.name, sim.violations[0], moves, sim.trace),
                       budget=150)
        return "\n".join(lines + ["shrunk:", small.render()])

    def _deliveries(self) -> list[Move]:
        return [m for m in self._moves("fire") if m.step is not None and m.step.kind != "timer"]

    # -------------------------------------------------------------- rules
    @precondition(lambda self: self.sim is not None and bool(self.sim.world.sched.deliveries()))
    @rule()
    def deliver_oldest(self) -> None:
        self._apply(self._deliveries()[0])

    @precondition(lambda self: self.sim is not None and bool(self.sim.world.sched.deliveries()))
    @rule(i=st.integers(0, 63))
    def deliver_any(self, i: int) -> None:
        moves = self._deliveries()
        self._apply(moves[i % len(moves)])

    @precondition(lambda self: self.sim is not None
                  and any(m.step is not None and m.step.kind == "timer" for m in self.sim.moves() if m.kind == "fire"))
    @rule()
    def timer_fires(self) -> None:
        move = next(m for m in self._moves("fire") if m.step is not None and m.step.kind == "timer")
        self._apply(move)

    @precondition(lambda self: self.sim is not None and any(m.kind != "fire" for m in self.sim.moves()))
    @rule(data=st.data())
    def environment(self, data: st.DataObject) -> None:
        moves = [m for m in self._moves() if m.kind != "fire"]
        self._apply(moves[data.draw(st.integers(0, len(moves) - 1), label="environment move")])

    @precondition(lambda self: self.sim is not None and not self.sim.moves())
    @rule()
    def nothing_left(self) -> None:
        """Nothing can happen any more: the example just ends here (teardown checks it)."""

    @invariant()
    def no_violation(self) -> None:
        if self.sim is not None:
            self._assert_ok()

    def teardown(self) -> None:
        sim = self.sim
        if sim is None:
            return
        try:
            if not sim.violations:
                before = len(sim.trace)
                finish(sim)
                STATS["finish_moves"] += len(sim.trace) - before
                STATS["downloads"] += len(sim.world.downloads)
                STATS["cancels"] += len(sim.world.cancel_clicks())
                if sim.violations:
                    raise AssertionError(self._report())
        finally:
            sim.close()
