"""Exhaustive bounded search, the fair run to quiescence, replay and shrinking.

``explore(scenario, depth)`` is a depth-first search over every enabled move (deliveries
in any order, the next timer, the scenario's environment moves) up to ``depth`` moves
after the scenario's setup. The world cannot be copied (its tabs are closures over one
global reactive store), so a node is revisited by *replaying* its path from a fresh
``Sim``; the first child of a node continues on the live world. With ``dedup`` a node
whose ``Sim.fingerprint`` was already expanded with at least as many moves left is not
expanded again (paths that only commute independent deliveries meet there).

Every node is checked with the per-move invariants; every leaf (depth reached or nothing
enabled) is finished with ``finish``: faults are cleared, lost sockets may reconnect, the
server's worker completes what is still active whenever no delivery is pending, and
deliveries (oldest first) then timers run until nothing is pending (at most
``FINISH_BOUND`` moves), or until only the 30 s poll of a connected tab is left and its
last round changed nothing; then the final invariants (I3, I4) are checked.
``shrink`` makes a counterexample smaller by replaying it without one move at a time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from .invariants import final_violations
from .sim import Move, Scenario, Sim

FINISH_BOUND = 400


@dataclass
class Counterexample:
    """A failing run: the violation, the trace (scenario setup, explored moves, then the
    fair run of ``finish``) and the explored part alone (``moves``, replayable)."""

    scenario: str
    violation: str
    moves: list[str]
    trace: list[str]

    def render(self) -> str:
        lines = [f"counterexample for scenario {self.scenario!r}: {self.violation}",
                 f"  {len(self.moves)} explored moves ({len(self.trace)} trace lines with setup and the fair run):"]
        return "\n".join(lines + render_trace(self.trace))


def render_trace(trace: list[str], head: int = 80, tail: int = 20) -> list[str]:
    """Numbered trace lines; a very long trace keeps its first ``head`` and last ``tail``."""
    lines = [f"  {i + 1:3d}. {t}" for i, t in enumerate(trace)]
    if len(lines) > head + tail:
        lines = lines[:head] + [f"  ... {len(lines) - head - tail} lines ..."] + lines[-tail:]
    return lines


@dataclass
class SearchResult:
    """What ``explore`` did: distinct states expanded, complete paths (leaves finished and
    checked), moves applied, nodes cut by state hashing, replays, the depth bound, the
    deepest path, seconds spent, the first counterexample (None when all held), and
    ``finals``: the distinct end states of the finished paths (tab statuses, server jobs
    with status and delivered flag, number of downloads)."""

    scenario: str
    depth: int
    deviations: Optional[int] = None
    states: int = 0
    paths: int = 0
    moves: int = 0
    pruned: int = 0
    replays: int = 0
    max_depth: int = 0
    seconds: float = 0.0
    counterexample: Optional[Counterexample] = None
    finals: set = field(default_factory=set)

    def summary(self) -> str:
        verdict = "no violation" if self.counterexample is None else f"VIOLATION {self.counterexample.violation}"
        bound = f"depth {self.depth}" + ("" if self.deviations is None else f", {self.deviations} deviations")
        return (f"[{self.scenario}] {bound}: {self.states} states, {self.paths} paths, "
                f"{self.moves} moves, {self.pruned} merged, {self.replays} replays, "
                f"{self.seconds:.1f} s: {verdict}")


def finish(sim: Sim, bound: int = FINISH_BOUND) -> list[str]:
    """Run ``sim`` fairly to quiescence and return every violation (per-move ones seen
    during the run, then I3/I4, or L0 if not quiescent within ``bound`` moves)."""
    w = sim.world
    before = len(sim.violations)
    w.server.injections.clear()
    sim.fair = True
    for tab_id in list(w.socket_blocked):
        sim.apply(Move("reconnect", tab_id, f"fair: {tab_id} WebSocket may reconnect"))
    sim.budget = {}
    n = 0
    slow_rounds: set = set()
    while True:
        moves = [m for m in sim.moves() if m.kind == "fire"]
        deliveries = [m for m in moves if m.step.kind != "timer"]
        active = sorted(jid for jid, job in w.server.jobs.items() if job.status in ("queued", "running"))
        if not deliveries and active:
            for jid in active:  # the worker is fair too: it finishes before time passes
                sim.trace.append(f"fair: server: {jid} completes")
                w.server.finish(jid)
            sim.observe()
            continue
        if not moves:
            break
        move = deliveries[0] if deliveries else moves[0]
        if move.step.kind == "timer" and sim.is_slow_poll(move.step):
            # Only the slow poll of a connected tab is left: if its last round changed
            # nothing, it never will (quiescent but for a poll that repeats for ever).
            seen = sim.fingerprint()
            if seen in slow_rounds:
                break
            slow_rounds.add(seen)
        sim.apply(Move(move.kind, move.target, "fair: " + move.text, move.step))
        n += 1
        if n > bound:
            sim.violations.append(f"L0: not quiescent after {bound} fair moves; pending "
                                  f"{[m.text for m in moves[:4]]}")
            return sim.violations[before:]  # I3/I4 speak of quiescence only
    fresh = [v for v in final_violations(sim) if v not in sim.violations]
    sim.violations.extend(fresh)
    return sim.violations[before:]


def replay(scenario: Scenario, moves: list[str], strict: bool = True) -> Sim:
    """A fresh ``Sim`` with the moves of ``moves`` (trace lines) applied. ``strict``:
    ValueError if one is not enabled; otherwise such moves are skipped (shrinking)."""
    sim = Sim(scenario)
    for text in moves:
        move = sim.find(text)
        if move is None:
            if strict:
                sim.close()
                raise ValueError(f"replay: {text!r} is not enabled; enabled: {[m.text for m in sim.moves()]}")
            continue
        sim.apply(move)
    return sim


def _first_violation(sim: Sim, codes: Optional[tuple[str, ...]] = None) -> Optional[str]:
    for v in sim.violations:
        if codes is None or v.split(":")[0] in codes:
            return v
    return None


def run_and_finish(scenario: Scenario, moves: list[str]) -> tuple[Optional[str], list[str], list[str]]:
    """Replay ``moves`` (skipping disabled ones), finish, and return (first violation,
    the moves actually applied, the full trace)."""
    sim = replay(scenario, moves, strict=False)
    try:
        applied = [t for t in sim.trace if not t.startswith("setup: ")]
        if not sim.violations:
            finish(sim)
        return _first_violation(sim), applied, list(sim.trace)
    finally:
        sim.close()


def shrink(scenario: Scenario, cex: Counterexample, budget: int = 400) -> Counterexample:
    """Remove explored moves one at a time while a violation with the same code remains
    (greedy, at most ``budget`` replays)."""
    code = cex.violation.split(":")[0]
    moves = list(cex.moves)
    best = cex
    tries = 0
    changed = True
    while changed and tries < budget:
        changed = False
        i = len(moves) - 1
        while i >= 0 and tries < budget:
            candidate = moves[:i] + moves[i + 1:]
            tries += 1
            violation, applied, trace = run_and_finish(scenario, candidate)
            if violation is not None and violation.split(":")[0] == code:
                moves = applied
                best = Counterexample(scenario.name, violation, applied, trace)
                changed = True
                i = min(i, len(moves)) - 1
            else:
                i -= 1
    return best


def explore(scenario: Scenario, depth: int, dedup: bool = True, stop_at_first: bool = True,
            time_limit_s: Optional[float] = None, deviations: Optional[int] = None) -> SearchResult:
    """Every interleaving of ``scenario`` up to ``depth`` moves (see module doc).

    ``deviations``: a delay bound instead of (in addition to) the depth bound: only
    interleavings that deviate at most that many times from the fair order (the oldest
    pending delivery first, timers only when nothing else is pending) are explored;
    environment moves may come anywhere and cost nothing."""
    result = SearchResult(scenario.name, depth, deviations=deviations)
    seen: dict[tuple, list[tuple[int, int]]] = {}
    started = time.perf_counter()

    class Stop(Exception):
        pass

    def fail(sim: Sim, violation: str) -> None:
        moves = [t for t in sim.trace if not t.startswith("setup: ") and not t.startswith("fair: ")]
        result.counterexample = Counterexample(scenario.name, violation, moves, list(sim.trace))
        if stop_at_first:
            raise Stop

    def leaf(sim: Sim) -> None:
        result.paths += 1
        problems = finish(sim)
        if problems:
            fail(sim, problems[0])
        w = sim.world
        result.finals.add((tuple(sorted((t.id, t.hook.export_status) for t in sim.open_tabs())),
                           tuple(sorted((j.id, j.status, j.delivered) for j in w.server.jobs.values())),
                           len(w.downloads)))

    def costs(sim: Sim) -> list[int]:
        moves = sim.moves()
        if deviations is None:
            return [0] * len(moves)
        fires = [m for m in moves if m.kind == "fire"]
        deliveries = [m for m in fires if m.step.kind != "timer"]
        fair = deliveries[0] if deliveries else (fires[0] if fires else None)
        return [0 if (m.kind != "fire" or m is fair) else 1 for m in moves]

    def visit(path: list[int], sim: Sim, dev_left: int) -> None:
        # ``sim`` is at ``path``; this call owns it: it closes it or hands it to child 0.
        texts: list[str] = []
        cost: list[int] = []
        picks: list[int] = []
        try:
            result.max_depth = max(result.max_depth, len(path))
            if sim.violations:
                fail(sim, sim.violations[0])
                return
            left = depth - len(path)
            if dedup:
                fp = sim.fingerprint()
                done = seen.setdefault(fp, [])
                if any(l >= left and d >= dev_left for l, d in done):
                    result.pruned += 1
                    return
                done.append((left, dev_left))
            result.states += 1
            if left > 0:
                all_cost = costs(sim)
                picks = [i for i, c in enumerate(all_cost) if c <= dev_left]
                texts = [m.text for m in sim.moves()]
                cost = [all_cost[i] for i in picks]
            if not texts:
                leaf(sim)
                return
            if time_limit_s is not None and time.perf_counter() - started > time_limit_s:
                texts = []
                raise TimeoutError(f"{scenario.name}: search exceeded {time_limit_s} s ({result.summary()})")
        finally:
            if not texts:
                sim.close()
        for k, i in enumerate(picks):
            if k == 0:
                child = sim
            else:
                result.replays += 1
                child = _replay_path(scenario, path)
            moves = child.moves()
            if [m.text for m in moves] != texts:
                child.close()
                raise AssertionError(f"replay is not deterministic at {path}")
            result.moves += 1
            child.apply(moves[i])
            visit(path + [i], child, dev_left - cost[k])

    def _replay_path(scn: Scenario, path: list[int]) -> Sim:
        # The prefix was checked when it was first explored: replay it unchecked.
        sim = Sim(scn, check=False)
        for i in path:
            sim.apply(sim.moves()[i])
        sim.check = True
        return sim

    root = Sim(scenario)
    try:
        visit([], root, deviations if deviations is not None else 0)
    except Stop:
        pass
    result.seconds = time.perf_counter() - started
    return result
