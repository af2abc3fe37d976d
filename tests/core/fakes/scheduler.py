"""The world's clock and pending deliveries: ``Step`` and ``Scheduler``.

Each delivery (an HTTP leg, a WebSocket frame, a BroadcastChannel message, a ``storage``
event, a Web Lock decision, a download fetch) is a ``Step`` in a FIFO named by its
``queue``; only a FIFO's head may fire. Timers are steps too: firing one moves the clock
to its due time. A model checker picks any of ``steps()``.
"""
from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Optional

from app.ports import Stop

START_MS = 1_700_000_000_000.0


@dataclass
class Step:
    """One pending delivery. ``queue`` names its FIFO (only a FIFO's head may fire)."""

    id: int
    kind: str
    tab: Optional[str]
    label: str
    queue: str
    run: Callable[[], None]
    due: Optional[float] = None  # timers only
    meta: Any = None
    """What the sender keeps about the step (checker introspection): for HTTP legs the
    request's ``{"on": bool}`` liveness, for lock requests ``{"withdrawn", "granted"}``,
    for WebSocket frames the ``FakeSocketConn``."""

    def __repr__(self) -> str:
        return f"Step#{self.id}({self.kind} {self.tab} {self.label})"


class Scheduler:
    """The world's pending steps and timers (one clock for all tabs)."""

    def __init__(self, start_ms: float = START_MS) -> None:
        self.now_ms = start_ms
        self._ids = itertools.count(1)
        self.queues: dict[str, deque[Step]] = {}
        self.timers: dict[int, Step] = {}
        self.fired: list[Step] = []

    def enqueue(self, kind: str, tab: Optional[str], label: str, run: Callable[[], None],
                queue: Optional[str] = None, meta: Any = None) -> Step:
        sid = next(self._ids)
        q = queue or f"solo-{sid}"
        step = Step(sid, kind, tab, label, q, run, meta=meta)
        self.queues.setdefault(q, deque()).append(step)
        return step

    # -- faults of a FIFO (the checker's lost, duplicated and reordered WebSocket frames)
    def lose_head(self, queue: str) -> Step:
        """Remove the head of ``queue`` without running it (a lost message)."""
        q = self.queues[queue]
        step = q.popleft()
        if not q:
            del self.queues[queue]
        return step

    def duplicate_head(self, queue: str) -> Step:
        """Deliver the head of ``queue`` twice: a copy (new id) goes right behind it."""
        q = self.queues[queue]
        head = q[0]
        copy = Step(next(self._ids), head.kind, head.tab, head.label + " (dup)", queue, head.run, meta=head.meta)
        q.insert(1, copy)
        return copy

    def swap_head(self, queue: str) -> None:
        """Reorder: the second message of ``queue`` overtakes the first."""
        q = self.queues[queue]
        if len(q) < 2:
            raise ValueError(f"{queue} holds fewer than two steps")
        first = q.popleft()
        q.insert(1, first)

    def drop(self, step: Step) -> None:
        q = self.queues.get(step.queue)
        if q is not None and step in q:
            q.remove(step)
            if not q:
                del self.queues[step.queue]

    def drop_queue(self, queue: str) -> None:
        self.queues.pop(queue, None)

    def add_timer(self, tab: Optional[str], fn: Callable[[], None], ms: float, label: str) -> Stop:
        sid = next(self._ids)
        step = Step(sid, "timer", tab, label, f"timer-{sid}", fn, due=self.now_ms + max(0.0, float(ms)))
        self.timers[sid] = step

        def cancel() -> None:
            self.timers.pop(sid, None)

        return cancel

    def next_timer(self) -> Optional[Step]:
        if not self.timers:
            return None
        return min(self.timers.values(), key=lambda s: (s.due, s.id))

    def deliveries(self) -> list[Step]:
        return sorted((q[0] for q in self.queues.values() if q), key=lambda s: s.id)

    def steps(self) -> list[Step]:
        out = self.deliveries()
        t = self.next_timer()
        if t is not None:
            out.append(t)
        return out

    def fire(self, step: Step) -> None:
        if step.kind == "timer":
            if self.timers.pop(step.id, None) is None:
                raise ValueError(f"{step} is not pending")
            self.now_ms = max(self.now_ms, step.due or self.now_ms)
        else:
            q = self.queues.get(step.queue)
            if not q or q[0] is not step:
                raise ValueError(f"{step} is not at the head of its queue")
            q.popleft()
            if not q:
                del self.queues[step.queue]
        self.fired.append(step)
        step.run()
