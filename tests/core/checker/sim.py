"""Scenarios and the simulator the checker drives, one ``Move`` at a time.

A ``Move`` is either the delivery of one pending ``Step`` of the ``World`` (an HTTP leg, a
WebSocket frame, a BroadcastChannel message, a ``storage`` event, a Web Lock decision, a
download fetch, or the earliest due timer, which moves the clock), or an environment move
allowed by the scenario's budget:

====================  =====================================================================
kind                  what happens
====================  =====================================================================
start, cancel         the user clicks Export / Cancel in a tab (only when the page shows
                      the button: Export when no job is pending, Cancel when ``can_cancel``)
download, show        the user clicks Download (the status panel's button, ``can_download``,
                      or the history row of the export the tab follows while it is
                      completed: ``download_door``) / the tab becomes visible
run, progress,        the server's worker moves a job (queued -> running, a progress event,
complete, fail        queued/running -> completed, queued/running -> failed); each change
                      sends a WebSocket event to every open socket (R6)
drop / reconnect      a tab's WebSocket is lost and stays down / may come back
lose, dup, swap       the head WebSocket frame of a tab is lost, delivered twice, or
                      overtaken by the next one
close, reload, open   a tab closes (not the last one), reloads, or a new tab opens
corrupt               the project's localStorage record is overwritten with garbage
dlfail                a download the browser was handed never reaches the server (the
                      server went down, the network failed: C9)
wait                  61 s pass while no timer is due (short-lived marks lapse)
slowpoll              the 30 s poll of a tab whose WebSocket is up fires (C7's safety net
                      for a frame lost on an open socket); the fair run fires it freely
fault                 the next POST or GET gets a 503, a timeout before reaching the server
                      (network error) or a timeout after the server acted (lost answer)
====================  =====================================================================

409 and 410 come from the fake server itself (R1 start while active, R2 cancel after the
download, R4 download of a cancelled job), never canned, so the server stays consistent.
Budgets are shared by all tabs; ``reconnect`` is free but only enabled after a ``drop``.
Tabs may belong to different browsers (``Scenario.browsers``): separate storage, Web
Locks and BroadcastChannel, one server, one user.
Everything is deterministic: the same moves from the same scenario give the same world.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from app import persistence
from app.machine import display
from app.ports import HttpResponse

from ..fakes import LOST_RESPONSE, NETWORK_ERROR, Step, Tab, World

PID = 1
RECORD_KEY = persistence.storage_key(PID)
START_OK = frozenset({"idle", "cancelled", "downloaded", "failed"})
"""States in which the checker's user clicks Export: the page enables the button in
``completed`` too, but a click there replaces a pending auto-download on purpose, which
would make I3 vacuous; the e2e and hook tests cover it."""
BUDGET_KINDS = ("start", "cancel", "download", "show", "run", "progress", "complete", "fail", "drop",
                "lose", "dup", "swap", "close", "reload", "open", "corrupt", "fault", "wait", "slowpoll", "dlfail")
WAIT_MS = 61_000.0
"""A ``wait`` lets this much time pass with nothing due (a minute-long mark would lapse)."""
FAULTS = (("503", HttpResponse(503, {"detail": "unavailable"})), ("timeout", NETWORK_ERROR),
          ("lost", LOST_RESPONSE))


@dataclass(frozen=True)
class Scenario:
    """What the checker may do: ``tabs`` open at first (at most ``max_tabs``), the budget
    of environment moves (``kind -> count``), and a deterministic ``setup`` run before
    the first explored move (not counted in depth). ``fallback``: tabs use the storage
    stand-ins for BroadcastChannel and Web Locks. ``faults``/``fault_methods`` restrict
    which injected faults are offered (all by default). ``browsers``: the browser of each
    tab opened first (``b1`` for the rest, and for tabs opened later)."""

    name: str
    tabs: int = 1
    budget: tuple[tuple[str, int], ...] = ()
    setup: Optional[Callable[["Sim"], None]] = None
    max_tabs: int = 3
    fallback: bool = False
    faults: tuple[str, ...] = ("503", "timeout", "lost")
    fault_methods: tuple[str, ...] = ("POST", "GET")
    browsers: tuple[str, ...] = ()

    @staticmethod
    def make(name: str, tabs: int = 1, setup: Optional[Callable[["Sim"], None]] = None, max_tabs: int = 3,
             fallback: bool = False, faults: tuple[str, ...] = ("503", "timeout", "lost"),
             fault_methods: tuple[str, ...] = ("POST", "GET"), browsers: tuple[str, ...] = (),
             **budget: int) -> "Scenario":
        unknown = set(budget) - set(BUDGET_KINDS)
        if unknown:
            raise ValueError(f"unknown budget kinds {sorted(unknown)}")
        return Scenario(name, tabs, tuple(sorted(budget.items())), setup, max_tabs, fallback, faults,
                        fault_methods, browsers)


@dataclass(frozen=True)
class Move:
    """One thing that can happen next. ``text`` is the trace line and the identity used
    to replay a trace; ``step`` is the world's pending step for ``kind == "fire"``."""

    kind: str
    target: str
    text: str
    step: Optional[Step] = field(default=None, compare=False, hash=False)


def timer_purpose(step: Step) -> str:
    """The name of what a timer will do: the innermost named function of its callback
    (``auto_download``, ``connect``, ``cancel_request``...); for the delayed sends of
    ``export_hook.timing.after`` the activity that scheduled the request."""
    fn = step.run
    name = _inner_name(getattr(fn, "__qualname__", ""))
    if name == "fire":  # timing.after: the wrapped ``send`` tells whose request it is
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            qual = getattr(value, "__qualname__", "")
            if qual.endswith(".send"):
                return _inner_name(qual[: -len(".send")]) or "request"
        return "request"
    return name


def _inner_name(qualname: str) -> str:
    parts = [p for p in qualname.split(".") if p not in ("<locals>", "<lambda>")]
    return parts[-1] if parts else qualname


def describe(step: Step, now: float) -> str:
    """The trace line of a pending step (timers: purpose and delay from ``now`` in ms)."""
    if step.kind == "timer":
        return f"timer {step.tab} {timer_purpose(step)} (+{(step.due or now) - now:.0f} ms)"
    return f"{step.kind} {step.tab}: {step.label}"


class Sim:
    """A ``World`` driven by ``Move`` s, with the facts the invariants need.

    ``trace``: the text of every move applied (``setup`` moves prefixed ``setup:``);
    ``violations``: every invariant violation seen so far (``"I1: ..."``), in order.
    ``check=False`` skips the per-move invariants (a replay of a prefix already checked).
    Always ``close()`` a ``Sim``: the store's error handler is global.
    """

    def __init__(self, scenario: Scenario, check: bool = True) -> None:
        from .invariants import step_violations  # circular: invariants reads Sim

        self._step_violations = step_violations
        self.check = check
        self.scenario = scenario
        self.world = World()
        self.budget: dict[str, int] = dict(scenario.budget)
        self.trace: list[str] = []
        self.violations: list[str] = []
        self.settled: set[tuple[str, str]] = set()
        """(browser, job): a tab of the browser settled the job's cancel or failure (it
        showed it cancelled/failed)."""
        self.shown: dict[str, str] = {}
        """Tab -> the machine state it showed after the last move (for I11)."""
        self.fallbacks: list[str] = []
        """I11 violations seen by ``observe``."""
        self.created_by: dict[str, tuple[str, int]] = {}
        """Job -> (tab whose start POST created it, order mark of its arrival)."""
        self.closed = False
        self.fair = False
        """Set by ``search.finish``: every timer is an ordinary move, earliest first."""
        self._in_setup = True
        for i in range(scenario.tabs):
            self._open_tab(browser=scenario.browsers[i] if i < len(scenario.browsers) else "b1")
        self.world.settle()
        if scenario.setup is not None:
            scenario.setup(self)
        self._in_setup = False
        self.observe()
        if check:
            self.violations.extend(self._step_violations(self))

    # ------------------------------------------------------------------ world access
    def open_tabs(self) -> list[Tab]:
        """The tabs not closed, by id."""
        return sorted((t for t in self.world.tabs.values() if not t.closed), key=lambda t: t.id)

    def tab(self, tab_id: str) -> Tab:
        return self.world.tabs[tab_id]

    def _open_tab(self, tab_id: Optional[str] = None, browser: str = "b1") -> Tab:
        kw = {"channel": "storage", "locks": "storage"} if self.scenario.fallback else {}
        tab = self.world.open_tab(PID, tab_id, browser=browser, **kw)
        tab.live_jobs = set()  # type: ignore[attr-defined]  # jobs this mount followed live
        return tab

    # ------------------------------------------------------------------ moves
    def moves(self) -> list[Move]:
        """Every move enabled now, in a deterministic order (deliveries by step id, the
        next timer, then environment moves)."""
        w = self.world
        now = w.now
        b = _Unlimited() if self._in_setup else self.budget
        out = [Move("fire", str(s.id), describe(s, now), s) for s in w.sched.deliveries()]
        out += self._timer_moves(b)
        tabs = self.open_tabs()
        for tab in tabs:
            hook = tab.hook
            t = tab.id
            if b.get("start") and hook.state.status in START_OK:
                out.append(Move("start", t, f"user: Export in {t}"))
            if b.get("cancel") and hook.can_cancel:
                out.append(Move("cancel", t, f"user: Cancel in {t} ({hook.export_status} {hook.state.job_id})"))
            door = display.download_door(hook.state)
            if b.get("download") and (hook.can_download or door == "hook"):
                out.append(Move("download", t, f"user: Download in {t} ({hook.state.job_id})"))
            if b.get("download") and door == "again" and hook.export_status != "downloaded":
                # A plain link before this browser's download is recorded bypasses C4 (the
                # product offers one only after it, for a deliberate second copy).
                out.append(Move("link", t, f"user: clicks the history link of {hook.state.job_id} in {t}"))
            if b.get("show"):
                out.append(Move("show", t, f"user: {t} becomes visible"))
            conn = tab.ports.socket.current  # type: ignore[attr-defined]
            if b.get("drop") and conn is not None and conn.open and not conn.closed and t not in w.socket_blocked:
                out.append(Move("drop", t, f"net: {t} WebSocket lost (stays down)"))
            if t in w.socket_blocked:
                out.append(Move("reconnect", t, f"net: {t} WebSocket may reconnect"))
            if conn is not None:
                q = w.sched.queues.get(conn.queue)
                frames = [s for s in q if s.label.startswith("export.")] if q else []
                head_is_frame = bool(q) and q[0].label.startswith("export.")
                if head_is_frame and b.get("lose"):
                    out.append(Move("lose", t, f"net: {t} loses frame [{q[0].label}]"))
                if head_is_frame and b.get("dup"):
                    out.append(Move("dup", t, f"net: {t} gets frame [{q[0].label}] twice"))
                if b.get("swap") and len(frames) >= 2 and q[1].label.startswith("export.") and head_is_frame:
                    out.append(Move("swap", t, f"net: {t} gets [{q[1].label}] before [{q[0].label}]"))
            if b.get("close") and len(tabs) > 1:
                out.append(Move("close", t, f"user: closes {t}"))
            if b.get("reload"):
                out.append(Move("reload", t, f"user: reloads {t}"))
        if b.get("open") and len(tabs) < self.scenario.max_tabs:
            out.append(Move("open", "", "user: opens a new tab"))
        for jid, job in sorted(w.server.jobs.items()):
            if job.status == "queued" and b.get("run"):
                out.append(Move("run", jid, f"server: {jid} runs"))
            if job.status == "running" and b.get("progress"):
                out.append(Move("progress", jid, f"server: {jid} progress"))
            if job.status in ("queued", "running") and b.get("complete"):
                out.append(Move("complete", jid, f"server: {jid} completes"))
            if job.status in ("queued", "running") and b.get("fail"):
                out.append(Move("fail", jid, f"server: {jid} fails"))
        nxt = self._next_timer(slow=False)
        if b.get("wait") and (nxt is None or (nxt.due or 0) > now + WAIT_MS):
            out.append(Move("wait", "", f"time: {WAIT_MS / 1000:.0f} s pass"))
        if b.get("corrupt"):
            out.append(Move("corrupt", RECORD_KEY, "storage: project record overwritten with garbage"))
        if b.get("dlfail"):
            for step in w.sched.deliveries():
                if step.kind == "download":
                    out.append(Move("dlfail", str(step.id), f"net: {step.tab}'s download [{step.label}] never "
                                                           f"reaches the server", step))
        if b.get("fault"):
            for name, _ in FAULTS:
                if name not in self.scenario.faults:
                    continue
                for method in self.scenario.fault_methods:
                    out.append(Move("fault", f"{method} {name}", f"server: next {method} gets {name}"))
        return out

    def is_slow_poll(self, step: Step) -> bool:
        """The poll timer of a tab whose socket is up: it repeats every 30 s for as long as
        a job is followed, so exploring it freely would make every search infinite."""
        if timer_purpose(step) != "poll":
            return False
        tab = next((t for t in self.open_tabs() if t.id == step.tab), None)
        return tab is not None and bool(tab.hook.socket_connected)  # type: ignore[attr-defined]

    def _next_timer(self, slow: Optional[bool]) -> Optional[Step]:
        timers = sorted(self.world.sched.timers.values(), key=lambda s: (s.due, s.id))
        if slow is not None:
            timers = [t for t in timers if self.is_slow_poll(t) == slow]
        return timers[0] if timers else None

    def _timer_moves(self, b: Any) -> list[Move]:
        """The earliest timer, as a ``fire`` move; outside the fair run and the setup the
        slow poll timers are left out of that choice and offered as ``slowpoll`` moves (at
        most the earliest one) while the budget lasts."""
        now = self.world.now
        if self.fair or self._in_setup:
            t = self._next_timer(None)
            return [] if t is None else [Move("fire", str(t.id), describe(t, now), t)]
        out = []
        t = self._next_timer(False)
        if t is not None:
            out.append(Move("fire", str(t.id), describe(t, now), t))
        slow = self._next_timer(True)
        if slow is not None and b.get("slowpoll"):
            out.append(Move("slowpoll", str(slow.id), describe(slow, now), slow))
        return out

    def find(self, text: str) -> Optional[Move]:
        """The enabled move whose trace line is ``text`` (replay of a trace)."""
        return next((m for m in self.moves() if m.text == text), None)

    def apply(self, move: Move) -> list[str]:
        """Apply ``move``; returns the invariant violations it caused (also appended to
        ``violations``)."""
        w = self.world
        self.trace.append(("setup: " if self._in_setup else "") + move.text)
        kind = move.kind
        budget_kind = "download" if kind == "link" else kind
        if kind != "fire" and kind != "reconnect" and not self._in_setup:
            if self.budget.get(budget_kind, 0) <= 0:
                raise ValueError(f"no budget left for {kind}")
            self.budget[budget_kind] -= 1
        if kind in ("fire", "slowpoll"):
            assert move.step is not None
            creates = move.step.kind == "http-request" and move.step.label.startswith("POST /api/projects/")
            before = set(w.server.jobs) if creates else set()
            w.fire(move.step)
            for jid in set(w.server.jobs) - before if creates else ():
                self.created_by[jid] = (move.step.tab or "", w.mark())
        elif kind == "start":
            self.tab(move.target).start()
        elif kind == "cancel":
            self.tab(move.target).cancel()
        elif kind == "download":
            self.tab(move.target).download()
        elif kind == "link":
            self.tab(move.target).download_link()
        elif kind == "show":
            self.tab(move.target).show()
        elif kind == "drop":
            w.drop_socket(self.tab(move.target), block=True)
        elif kind == "reconnect":
            w.unblock_socket(self.tab(move.target))
        elif kind in ("lose", "dup", "swap"):
            queue = self.tab(move.target).ports.socket.current.queue  # type: ignore[attr-defined]
            {"lose": w.sched.lose_head, "dup": w.sched.duplicate_head, "swap": w.sched.swap_head}[kind](queue)
        elif kind == "dlfail":
            assert move.step is not None
            w.fail_download(move.step)
        elif kind == "close":
            self.tab(move.target).close()
        elif kind == "reload":
            old = self.tab(move.target)
            old.close()
            del w.tabs[old.id]
            self.shown.pop(old.id, None)
            self._open_tab(old.id, old.browser.name)
        elif kind == "open":
            self._open_tab()
        elif kind == "run":
            w.server.run(move.target, progress=10.0)
        elif kind == "progress":
            job = w.server.jobs[move.target]
            w.server.progress(move.target, min(99.0, job.progress + 30.0))
        elif kind == "complete":
            w.server.finish(move.target)
        elif kind == "fail":
            w.server.fail(move.target)
        elif kind == "wait":
            w.sched.now_ms += WAIT_MS
        elif kind == "corrupt":
            w.storage.view("devtools").set(RECORD_KEY, "{not json")
        elif kind == "fault":
            method, name = move.target.split(" ")
            w.server.inject(method, r".*", dict(FAULTS)[name], times=1)
        else:
            raise ValueError(f"unknown move {move!r}")
        self.observe()
        if not self.check:
            return []
        new = self._step_violations(self)
        fresh = [v for v in new if v not in self.violations]
        self.violations.extend(fresh)
        return fresh

    def do(self, text_prefix: str) -> None:
        """Apply the first enabled move whose text starts with ``text_prefix`` (setups)."""
        move = next((m for m in self.moves() if m.text.startswith(text_prefix)), None)
        if move is None:
            raise ValueError(f"no enabled move starts with {text_prefix!r}: {[m.text for m in self.moves()]}")
        self.apply(move)

    def settle(self) -> None:
        """Deliver every pending non-timer step, oldest first (setups)."""
        while True:
            steps = self.world.sched.deliveries()
            if not steps:
                return
            self.apply(Move("fire", str(steps[0].id), describe(steps[0], self.world.now), steps[0]))

    def observe(self) -> None:
        """Record the facts that only the current state shows: which job each mount
        followed live (I3), which jobs a tab settled as cancelled or failed (I5), and a tab
        that asked for the download lock falling back to ``completed`` (I11)."""
        for tab in self.open_tabs():
            state = tab.hook.state
            before, self.shown[tab.id] = self.shown.get(tab.id), state.status
            if before == "downloading" and state.status == "completed":
                self.fallbacks.append(f"I11: {tab.id} asked for the download lock of {state.job_id} and showed it "
                                      f"offered again (a Download button it takes back at the winner's news)")
            if state.job is None:
                continue
            if state.live:
                tab.live_jobs.add(state.job.id)  # type: ignore[attr-defined]
            if state.status in ("cancelled", "failed"):
                self.settled.add((tab.browser.name, state.job.id))

    # ------------------------------------------------------------------ state hashing
    def fingerprint(self) -> tuple:
        """An abstraction of the whole state for merging paths: tab machine states and
        socket flags, storage, server jobs and pending faults, pending deliveries (kind,
        tab, label, whether their sender still wants them) per FIFO, timers (relative due,
        tab, purpose), lock holders, downloads, cancel clicks, facts for I3/I5 and the
        remaining budget. Not in it: backoff counters and step ids (they change no
        decision the invariants look at, only later delays)."""
        w = self.world
        now = w.now
        tabs = tuple((t.id, _cached_repr(t.hook.state), t.hook.socket_connected,  # type: ignore[attr-defined]
                      tuple(sorted(t.live_jobs))) for t in self.open_tabs())
        queues = []
        for name, q in w.sched.queues.items():
            entries = tuple((s.kind, s.tab, s.label, _live(s)) for s in q)
            queues.append((name if not name.startswith("solo-") else "", entries))
        timers = tuple(sorted(((s.due or now) - now, s.tab or "", timer_purpose(s)) for s in w.sched.timers.values()))
        jobs = tuple((jid, _cached_repr(job)) for jid, job in sorted(w.server.jobs.items()))
        faults = tuple((i.method, i.path.pattern, repr(i.outcome), i.times) for i in w.server.injections if i.times)
        return (
            tabs, tuple((name, tuple(sorted(b.storage.data.items()))) for name, b in sorted(w.browsers.items())),
            jobs, faults, tuple(sorted(w.socket_blocked)), tuple(sorted(queues)), timers,
            tuple((name, tuple(sorted((n, h[0]) for n, h in b.locks.holders.items())))
                  for name, b in sorted(w.browsers.items())),
            tuple((d.tab, d.job_id, d.server_status, d.browser) for d in w.downloads),
            tuple(sorted((tab, job) for _, tab, job in cancel_clicks(self))),
            tuple(sorted(self.settled)), tuple(sorted(self.budget.items())),
            tuple((tab, kind, status) for _, tab, kind, _job, status in w.user_actions if kind == "cancel"),
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.world.close()


_REPRS: dict[int, tuple[Any, str]] = {}


def _cached_repr(obj: Any) -> str:
    """``repr`` of an immutable state or job, cached by identity (the object is kept alive
    with its repr so its id cannot be reused)."""
    hit = _REPRS.get(id(obj))
    if hit is not None and hit[0] is obj:
        return hit[1]
    if len(_REPRS) > 50_000:
        _REPRS.clear()
    text = repr(obj)
    _REPRS[id(obj)] = (obj, text)
    return text


class _Unlimited(dict):
    """The budget during a scenario's setup: every move kind is allowed."""

    def get(self, key: str, default: Any = None) -> int:
        return 1


def _live(step: Step) -> Any:
    meta = step.meta
    if isinstance(meta, dict):
        return tuple(sorted((k, v) for k, v in meta.items() if isinstance(v, bool)))
    if meta is not None and hasattr(meta, "closed"):
        return not meta.closed
    return None


def cancel_clicks(sim: "Sim") -> list[tuple[int, str, str]]:
    """``(mark, tab, job)`` of every cancel click (``World.cancel_clicks``: a click made
    while starting counts for the job the same page showed next, else for the job its
    start request made, found by its start token)."""
    return sim.world.cancel_clicks()


def record_job_id(sim: Sim, browser: str = "b1") -> Optional[str]:
    """The job id in ``browser``'s persisted record of the project (None if absent or
    unreadable)."""
    raw = sim.world.browser(browser).storage.data.get(RECORD_KEY)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return data["job"]["id"]
    except (ValueError, TypeError, KeyError):
        return None
