"""In-memory fakes for every port of ``app.ports`` and a ``World`` of N tabs.

Everything is deterministic and asynchronous the way browsers are: nothing a port does
calls back synchronously; each delivery (an HTTP request reaching the server, its answer
reaching the tab, a WebSocket frame, a BroadcastChannel message, a ``storage`` event, a
Web Lock decision, the browser fetching a download) is a pending ``Step`` of the world.

- ``world.steps()``: the steps that may happen next: the head of each FIFO (one per
  socket connection, per channel sender->receiver pair, per storage-event receiver) and
  every independent item (each HTTP leg, each lock request, each download fetch), plus
  the earliest due timer (firing it moves the clock). A model checker picks any of them.
- ``world.fire(step)``: deliver one; ``world.settle()``: deliver non-timer steps oldest
  first until none is left; ``world.advance(ms)``: settle, then fire timers in time order
  (settling after each) up to ``now + ms``; ``world.tick(ms)``: fire only the due timers.
- User clicks go through ``Tab`` (``start``, ``cancel``, ``download``, ``dismiss``,
  ``show``, ``close``; ``world.reload(tab)``) and are logged in ``world.user_actions``;
  ``world.job_history`` logs which job each tab showed; ``world.cancel_clicks()`` and
  ``world.violations()`` turn them into the safety invariants (C1, C4, R2).
- ``FakeServer`` implements R1-R4 and R6 over ``app.models`` and takes scripted faults
  (``inject``): a canned answer, a network error before or after the server acted, or an
  answer that never comes.
- Tabs share one ``FakeStorage`` (a write fires ``storage`` events in the OTHER tabs),
  one ``FakeChannelBus`` and one ``FakeLockManager``; each tab has its own socket,
  downloader, visibility and log. ``world.downloads`` records every download call.
"""
from __future__ import annotations

import itertools
import json
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from pydantic import ValidationError

from app import store
from app.crosstab import StorageChannel, StorageClaimLocks
from app.export_hook import ExportController, create_export_controller
from app.errors import validation_errors
from app.models import ACTIVE_STATUSES, ExportEvent, ExportJob, ExportOptions
from app.ports import Stop, HttpResponse, Ports

START_MS = 1_700_000_000_000.0

# ------------------------------------------------------------------------------ steps


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


# ----------------------------------------------------------------------------- server

NETWORK_ERROR = "network-error"      # the request never reached the server
LOST_RESPONSE = "lost-response"      # the server acted, the answer was lost
HANG = "hang"                        # no answer ever (until aborted)


@dataclass
class Injection:
    method: str
    path: re.Pattern
    outcome: Any
    times: int


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


class FakeServer:
    """The export API of DESIGN.md for one user (R1-R4, R6), driven by the test.

    Jobs advance only when the test calls ``run``/``progress``/``complete``/``fail``/
    ``expire``; every change bumps the job's ``seq`` and sends an ``ExportEvent`` to every
    open socket. ``requests`` logs ``(tab, method, path)`` of every request that arrived.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.jobs: dict[str, ExportJob] = {}
        self._ids = itertools.count(1)
        self.injections: list[Injection] = []
        self.sockets: list["FakeSocketConn"] = []
        self.available = True
        self.requests: list[tuple[str, str, str]] = []
        self.download_answers: list[tuple[str, str, int]] = []

    # -- faults
    def inject(self, method: str, path_regex: str, outcome: Any, times: int = 1) -> None:
        """The next ``times`` requests matching ``method`` and ``path_regex`` (re.fullmatch)
        get ``outcome``: an ``HttpResponse`` (server does nothing), ``NETWORK_ERROR``,
        ``LOST_RESPONSE`` (server acts, client gets a network error) or ``HANG``."""
        self.injections.append(Injection(method, re.compile(path_regex), outcome, times))

    def _injected(self, method: str, path: str) -> Any:
        for inj in self.injections:
            if inj.method == method and inj.path.fullmatch(path.split("?")[0]) and inj.times > 0:
                inj.times -= 1
                return inj.outcome
        return None

    # -- HTTP
    def handle(self, tab: str, method: str, path: str, body: Any) -> Any:
        """Returns an ``HttpResponse``, ``NETWORK_ERROR`` or ``HANG``."""
        if not self.available:
            return NETWORK_ERROR
        outcome = self._injected(method, path)
        if outcome in (NETWORK_ERROR, HANG) or isinstance(outcome, HttpResponse):
            return outcome
        self.requests.append((tab, method, path))
        resp = self._route(method, path, body)
        return NETWORK_ERROR if outcome == LOST_RESPONSE else resp

    def _route(self, method: str, path: str, body: Any) -> HttpResponse:
        m = re.fullmatch(r"/api/projects/(\d+)/exports(?:\?start_token=([A-Za-z0-9._-]+))?", path)
        if m and method == "POST":
            return self._start(int(m.group(1)), body, m.group(2))
        m = re.fullmatch(r"/api/exports/([^/]+)", path)
        if m and method == "GET":
            job = self.jobs.get(m.group(1))
            return HttpResponse(200, self._dump(job)) if job else HttpResponse(404, {"detail": "no such export"})
        m = re.fullmatch(r"/api/exports/([^/]+)/cancel", path)
        if m and method == "POST":
            return self._cancel(m.group(1))
        return HttpResponse(404, {"detail": "not found"})

    @staticmethod
    def _dump(job: ExportJob) -> dict:
        return job.model_dump(mode="json")

    def _start(self, project_id: int, body: Any, start_token: Optional[str] = None) -> HttpResponse:
        try:
            options = ExportOptions.model_validate(body or {})
        except ValidationError as exc:
            return HttpResponse(422, validation_errors(exc))
        for job in self.jobs.values():
            if start_token is not None and job.start_token == start_token:
                return HttpResponse(202, self._dump(job))  # R1: a repeated start gets its job
        for job in self.jobs.values():
            if job.project_id == project_id and job.status in ACTIVE_STATUSES:
                return HttpResponse(409, {"detail": "an export is already running", "job": self._dump(job)})
        jid = f"job-{next(self._ids)}"
        job = ExportJob(id=jid, project_id=project_id, status="queued", seq=1, stage="queued",
                        created_at=_iso(self.sched.now_ms), options=options, start_token=start_token)
        self.jobs[jid] = job
        self._emit(job)
        return HttpResponse(202, self._dump(job))

    def _cancel(self, job_id: str) -> HttpResponse:
        job = self.jobs.get(job_id)
        if job is None:
            return HttpResponse(404, {"detail": "no such export"})
        if job.status == "cancelled":
            return HttpResponse(200, self._dump(job))
        if job.status in ACTIVE_STATUSES or (job.status == "completed" and not job.delivered):
            job = self._set(job_id, status="cancelled", stage="cancelled", finished_at=_iso(self.sched.now_ms))
            return HttpResponse(200, self._dump(job))
        if job.status == "completed":
            return HttpResponse(409, {"detail": "already downloaded", "job": self._dump(job)})
        return HttpResponse(409, {"detail": f"export already {job.status}", "job": self._dump(job)})

    def download(self, job_id: str) -> int:
        """R4: the first download of a completed job marks it delivered."""
        job = self.jobs.get(job_id)
        if job is None:
            return 404
        if job.status in ("cancelled", "expired"):
            return 410
        if job.status in ACTIVE_STATUSES:
            return 409
        if job.status == "failed":
            return 404
        if not job.delivered:
            self.jobs[job_id] = job.model_copy(update={"delivered": True})
        return 200

    # -- job control (the worker)
    def _set(self, job_id: str, **changes: Any) -> ExportJob:
        job = self.jobs[job_id]
        job = job.model_copy(update={**changes, "seq": job.seq + 1})
        self.jobs[job_id] = job
        self._emit(job)
        return job

    def run(self, job_id: str, progress: float = 0.0) -> ExportJob:
        assert self.jobs[job_id].status == "queued", self.jobs[job_id].status
        return self._set(job_id, status="running", stage="annotations", progress=progress)

    def progress(self, job_id: str, progress: float) -> Optional[ExportJob]:
        if self.jobs[job_id].status != "running":
            return None  # the worker stops at its next checkpoint (R2)
        return self._set(job_id, progress=progress)

    def complete(self, job_id: str, size_bytes: int = 4096) -> Optional[ExportJob]:
        """R3: a compare-and-set from running; returns None if the job was not running."""
        if self.jobs[job_id].status != "running":
            return None
        return self._set(job_id, status="completed", progress=100.0, stage="done",
                         size_bytes=size_bytes, finished_at=_iso(self.sched.now_ms))

    def fail(self, job_id: str, message: str = "worker crashed") -> Optional[ExportJob]:
        if self.jobs[job_id].status not in ACTIVE_STATUSES:
            return None
        return self._set(job_id, status="failed", message=message, finished_at=_iso(self.sched.now_ms))

    def expire(self, job_id: str) -> ExportJob:
        return self._set(job_id, status="expired")

    def finish(self, job_id: str) -> ExportJob:
        """queued -> running -> completed in one go."""
        if self.jobs[job_id].status == "queued":
            self.run(job_id)
        job = self.complete(job_id)
        assert job is not None
        return job

    def active_job(self, project_id: int) -> Optional[ExportJob]:
        for job in self.jobs.values():
            if job.project_id == project_id and job.status in ACTIVE_STATUSES:
                return job
        return None

    # -- WebSocket (R6)
    def _emit(self, job: ExportJob) -> None:
        event = ExportEvent.from_job(job, self.sched.now_ms).model_dump()
        for conn in list(self.sockets):
            conn.send(event)


# ------------------------------------------------------------------------------ ports


class FakeHttp:
    """Two legs per request: the request reaching the server, then the answer reaching
    the tab; aborting before the first leg means the server never sees it."""

    def __init__(self, world: "World", tab: str) -> None:
        self.world = world
        self.tab = tab

    def request(self, method: str, path: str, body: Optional[dict],
                on_response: Callable[[HttpResponse], None], on_error: Callable[[str], None]) -> Stop:
        sched = self.world.sched
        live = {"on": True}
        body_copy = json.loads(json.dumps(body)) if body is not None else None

        def answer(result: Any) -> None:
            if not live["on"]:
                return
            live["on"] = False
            if isinstance(result, HttpResponse):
                on_response(HttpResponse(result.status, json.loads(json.dumps(result.body))))
            else:
                on_error("network error")

        def arrive() -> None:
            if not live["on"]:
                return
            result = self.world.server.handle(self.tab, method, path, body_copy)
            if result == HANG:
                return
            sched.enqueue("http-response", self.tab, f"{method} {path} -> "
                          f"{result.status if isinstance(result, HttpResponse) else result}",
                          lambda: answer(result), meta=live)

        sched.enqueue("http-request", self.tab, f"{method} {path}", arrive, meta=live)

        def cancel() -> None:
            live["on"] = False

        return cancel


class FakeSocketConn:
    def __init__(self, world: "World", tab: str, on_open: Callable, on_message: Callable, on_close: Callable,
                 n: int) -> None:
        self.world = world
        self.tab = tab
        self.on_open, self.on_message, self.on_close = on_open, on_message, on_close
        self.queue = f"socket-{tab}-{n}"
        self.open = False
        self.closed = False

    def send(self, event: dict) -> None:
        if self.open and not self.closed:
            payload = json.loads(json.dumps(event))
            self.world.sched.enqueue("socket", self.tab, f"{event.get('type')} {event.get('job_id')} seq={event.get('seq')}",
                                     lambda: (not self.closed) and self.on_message(payload), self.queue, meta=self)

    def drop(self) -> None:
        """The connection is lost: undelivered frames are lost, the tab hears a close."""
        if self.closed:
            return
        self.closed = True
        self.open = False
        if self in self.world.server.sockets:
            self.world.server.sockets.remove(self)
        self.world.sched.drop_queue(self.queue)
        self.world.sched.enqueue("socket", self.tab, "close", self.on_close, self.queue)


class FakeSocket:
    def __init__(self, world: "World", tab: str) -> None:
        self.world = world
        self.tab = tab
        self.conns: list[FakeSocketConn] = []
        self._n = itertools.count(1)

    @property
    def current(self) -> Optional[FakeSocketConn]:
        return self.conns[-1] if self.conns else None

    def connect(self, on_open: Callable[[], None], on_message: Callable[[dict], None],
                on_close: Callable[[], None]) -> Stop:
        conn = FakeSocketConn(self.world, self.tab, on_open, on_message, on_close, next(self._n))
        self.conns.append(conn)
        server = self.world.server

        def opened() -> None:
            if conn.closed:
                return
            if not server.available or self.tab in self.world.socket_blocked:
                conn.closed = True
                conn.on_close()
                return
            conn.open = True
            server.sockets.append(conn)
            conn.on_open()

        self.world.sched.enqueue("socket", self.tab, "open", opened, conn.queue)

        def cancel() -> None:
            conn.closed = True
            conn.open = False
            if conn in server.sockets:
                server.sockets.remove(conn)
            self.world.sched.drop_queue(conn.queue)

        return cancel


class FakeStorage:
    """One origin's localStorage shared by all tabs (``view(tab)`` gives a tab's port)."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.data: dict[str, str] = {}
        self.subscribers: dict[str, list[Callable[[str, Optional[str]], None]]] = {}

    def view(self, tab: str) -> "TabStorage":
        return TabStorage(self, tab)

    def _changed(self, src: str, key: str, value: Optional[str]) -> None:
        for dst, subs in self.subscribers.items():
            if dst == src or not subs:
                continue

            def deliver(dst: str = dst) -> None:
                for sub in list(self.subscribers.get(dst, ())):
                    sub(key, value)

            self.world.sched.enqueue("storage", dst, f"{key}={'<removed>' if value is None else '...'}",
                                     deliver, f"storage->{dst}")


class TabStorage:
    def __init__(self, shared: FakeStorage, tab: str) -> None:
        self.shared = shared
        self.tab = tab

    def get(self, key: str) -> Optional[str]:
        return self.shared.data.get(key)

    def set(self, key: str, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("localStorage stores strings")
        if self.shared.data.get(key) == value:
            return  # browsers fire no storage event for an unchanged value
        self.shared.data[key] = value
        self.shared._changed(self.tab, key, value)

    def remove(self, key: str) -> None:
        if key in self.shared.data:
            del self.shared.data[key]
            self.shared._changed(self.tab, key, None)

    def subscribe(self, on_change: Callable[[str, Optional[str]], None]) -> Stop:
        subs = self.shared.subscribers.setdefault(self.tab, [])
        subs.append(on_change)
        return lambda: on_change in subs and subs.remove(on_change)


class FakeChannelBus:
    """BroadcastChannel ``cellhub-export``: a post reaches the other tabs subscribed at
    that moment, in order per sender (a JSON round trip stands in for structured clone)."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.subscribers: dict[str, list[Callable[[dict], None]]] = {}
        self.posted: list[tuple[str, dict]] = []

    def view(self, tab: str) -> "TabChannel":
        return TabChannel(self, tab)


class TabChannel:
    def __init__(self, bus: FakeChannelBus, tab: str) -> None:
        self.bus = bus
        self.tab = tab

    def post(self, message: dict) -> None:
        payload = json.dumps(message)
        self.bus.posted.append((self.tab, json.loads(payload)))
        for dst, subs in self.bus.subscribers.items():
            if dst == self.tab or not subs:
                continue

            def deliver(dst: str = dst) -> None:
                for sub in list(self.bus.subscribers.get(dst, ())):
                    sub(json.loads(payload))

            self.bus.world.sched.enqueue("channel", dst, f"{message.get('kind') if isinstance(message, dict) else '?'} from {self.tab}", deliver,
                                         f"channel-{self.tab}->{dst}")

    def subscribe(self, on_message: Callable[[dict], None]) -> Stop:
        subs = self.bus.subscribers.setdefault(self.tab, [])
        subs.append(on_message)
        return lambda: on_message in subs and subs.remove(on_message)


class FakeLockManager:
    """Web Locks with ``ifAvailable``: each request is decided when its step fires."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.holders: dict[str, tuple[str, int]] = {}
        self._tokens = itertools.count(1)
        self.grants: list[tuple[str, str]] = []

    def view(self, tab: str) -> "TabLocks":
        return TabLocks(self, tab)

    def release_all(self, tab: str) -> None:
        for name, (holder, _) in list(self.holders.items()):
            if holder == tab:
                del self.holders[name]


class TabLocks:
    def __init__(self, mgr: FakeLockManager, tab: str) -> None:
        self.mgr = mgr
        self.tab = tab

    def try_acquire(self, name: str, on_result: Callable[[Optional[Stop]], None]) -> Stop:
        token = next(self.mgr._tokens)
        st = {"withdrawn": False, "granted": False}

        def release() -> None:
            if self.mgr.holders.get(name) == (self.tab, token):
                del self.mgr.holders[name]

        def decide() -> None:
            if st["withdrawn"]:
                return
            if name in self.mgr.holders:
                on_result(None)
                return
            self.mgr.holders[name] = (self.tab, token)
            self.mgr.grants.append((self.tab, name))
            st["granted"] = True
            on_result(release)

        self.mgr.world.sched.enqueue("lock", self.tab, f"lock {name}", decide, meta=st)

        def cancel() -> None:
            st["withdrawn"] = True
            if st["granted"]:
                release()

        return cancel


@dataclass
class DownloadRecord:
    tab: str
    job_id: str
    url: str
    filename: Optional[str]
    at_ms: float
    step: int
    server_status: Optional[int] = None


class FakeDownloader:
    def __init__(self, world: "World", tab: str) -> None:
        self.world = world
        self.tab = tab

    def download(self, url: str, filename: Optional[str] = None) -> None:
        m = re.fullmatch(r"/api/exports/([^/]+)/download", url)
        job_id = m.group(1) if m else url
        rec = DownloadRecord(self.tab, job_id, url, filename, self.world.sched.now_ms, self.world.mark())
        self.world.downloads.append(rec)

        def fetch() -> None:
            rec.server_status = self.world.server.download(job_id)

        self.world.sched.enqueue("download", self.tab, f"fetch {url}", fetch)


class FakeClockPort:
    def __init__(self, world: "World", tab: str) -> None:
        self.world = world
        self.tab = tab
        self.cancels: list[Stop] = []

    def now(self) -> float:
        return self.world.sched.now_ms

    def set_timeout(self, fn: Callable[[], None], ms: float) -> Stop:
        cancel = self.world.sched.add_timer(self.tab, fn, ms, f"timer {getattr(fn, '__qualname__', fn)}")
        self.cancels.append(cancel)
        return cancel


class FakeVisibility:
    def __init__(self) -> None:
        self.subs: list[Callable[[], None]] = []

    def subscribe(self, on_visible: Callable[[], None]) -> Stop:
        self.subs.append(on_visible)
        return lambda: on_visible in self.subs and self.subs.remove(on_visible)

    def show(self) -> None:
        for sub in list(self.subs):
            sub()


class FakeLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


# ------------------------------------------------------------------------------ world


class Tab:
    """One open page: its ports, the controller of its mounted hook, and user actions."""

    def __init__(self, world: "World", tab_id: str, project_id: int, ports: Ports,
                 controller: ExportController, unmount: Callable[[], None]) -> None:
        self.world = world
        self.id = tab_id
        self.project_id = project_id
        self.ports = ports
        self.controller = controller
        self._unmount = unmount
        self.closed = False
        self.stop_history: Callable[[], None] = lambda: None

    # state
    @property
    def hook(self) -> Any:
        return self.controller.mounted.result.peek()

    @property
    def status(self) -> str:
        return self.controller.export_status.value

    @property
    def job(self) -> Optional[ExportJob]:
        return self.controller.current_job.value

    @property
    def log(self) -> FakeLog:
        return self.ports.log  # type: ignore[return-value]

    # user actions
    def start(self, options: Any = None) -> None:
        self.world.user_actions.append((self.world.mark(), self.id, "start", None, self.status))
        self.controller.start_export(options)

    def cancel(self) -> None:
        at = self.world.mark()
        self.world.user_actions.append((at, self.id, "cancel", self.job.id if self.job else None, self.status))
        self.world.cancel_context[at] = (self.hook.state.start_token, self.history)  # type: ignore[attr-defined]
        self.controller.cancel_export()

    def download(self, job_id: Optional[str] = None) -> None:
        job_id = job_id or (self.job.id if self.job else "")
        self.world.user_actions.append((self.world.mark(), self.id, "download", job_id, self.status))
        self.controller.download(job_id)

    def dismiss(self) -> None:
        self.world.user_actions.append((self.world.mark(), self.id, "dismiss",
                                        self.job.id if self.job else None, self.status))
        self.controller.dismiss()

    def show(self) -> None:
        """The tab becomes visible."""
        self.ports.visibility.show()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Close the tab: unmount, then what the browser does (locks freed, timers gone)."""
        if self.closed:
            return
        self.closed = True
        self.stop_history()
        self._unmount()
        for cancel in self.ports.clock.cancels:  # type: ignore[attr-defined]
            cancel()
        self.world.locks.release_all(self.id)
        self.world.storage.subscribers.pop(self.id, None)
        self.world.bus.subscribers.pop(self.id, None)
        for conn in self.ports.socket.conns:  # type: ignore[attr-defined]
            conn.closed = True
            if conn in self.world.server.sockets:
                self.world.server.sockets.remove(conn)



def _log_job(history: list, shared: list, mark: int, job_id: str) -> None:
    history.append((mark, job_id))
    shared.append((mark, job_id))

class World:
    """A deterministic browser + server world with N tabs (see module doc)."""

    def __init__(self, start_ms: float = START_MS) -> None:
        self.sched = Scheduler(start_ms)
        self.server = FakeServer(self.sched)
        self.storage = FakeStorage(self)
        self.bus = FakeChannelBus(self)
        self.locks = FakeLockManager(self)
        self.tabs: dict[str, Tab] = {}
        self.downloads: list[DownloadRecord] = []
        self.user_actions: list[tuple[int, str, str, Optional[str], str]] = []
        """(mark, tab, action, job id shown, machine status) of every user click."""
        self.socket_blocked: set[str] = set()
        self.job_history: dict[str, list[tuple[int, str]]] = {}
        self.cancel_context: dict[int, tuple[Optional[str], list[tuple[int, str]]]] = {}
        """Stop click mark -> (the start token then pending, the clicking page's own job history)."""
        self.errors: list[tuple[BaseException, str]] = []
        self._tab_ids = itertools.count(1)
        self._start_tokens = itertools.count(1)
        self._marks = itertools.count(1)
        self._prev_handler = store.set_error_handler(lambda exc, where: self.errors.append((exc, where)))

    def close(self) -> None:
        """Close every tab and restore the store's error handler."""
        for tab in list(self.tabs.values()):
            tab.close()
        store.set_error_handler(self._prev_handler)

    def mark(self) -> int:
        """A global order number for user actions and downloads (for the invariants)."""
        return next(self._marks)

    # tabs
    def open_tab(self, project_id: int = 1, tab_id: Optional[str] = None, channel: str = "broadcast",
                 locks: str = "web") -> Tab:
        """Open a page on ``project_id``. ``channel="storage"`` uses ``StorageChannel`` (no
        BroadcastChannel); ``locks="storage"`` uses ``StorageClaimLocks`` (no Web Locks)."""
        tid = tab_id or f"tab{next(self._tab_ids)}"
        storage = self.storage.view(tid)
        clock = FakeClockPort(self, tid)
        ports = Ports(
            http=FakeHttp(self, tid),
            socket=FakeSocket(self, tid),
            storage=storage,
            channel=StorageChannel(storage, tid) if channel == "storage" else self.bus.view(tid),
            locks=StorageClaimLocks(storage, clock, tid) if locks == "storage" else self.locks.view(tid),
            clock=clock,
            downloader=FakeDownloader(self, tid),
            visibility=FakeVisibility(),
            log=FakeLog(),
            tab_id=tid,
            # A reloaded fake tab keeps its id (the traces name tabs by it), where a real page
            # gets a fresh random one: the world hands out start tokens instead.
            new_token=lambda: f"start-{next(self._start_tokens)}",
        )
        controller, unmount = create_export_controller(project_id, ports)
        tab = Tab(self, tid, project_id, ports, controller, unmount)
        # The jobs this tab has shown, in order: resolves a cancel clicked before the job id
        # was known to the job it was about (for ``violations``).
        history: list[tuple[int, str]] = []  # this page's; a reload starts a new one
        self.job_history.setdefault(tid, [])
        shared = self.job_history[tid]
        tab.stop_history = store.detached(lambda: store.effect(
            lambda: _log_job(history, shared, self.mark(), controller.current_job.value.id)
            if controller.current_job.value is not None else None))
        tab.history = history  # type: ignore[attr-defined]
        self.tabs[tid] = tab
        return tab

    def reload(self, tab: Tab, **kwargs: Any) -> Tab:
        """Close ``tab`` and open a new page with the same id and project."""
        tab.close()
        del self.tabs[tab.id]
        return self.open_tab(tab.project_id, tab.id, **kwargs)

    # network faults
    def drop_socket(self, tab: Tab, block: bool = True) -> None:
        """Lose ``tab``'s WebSocket; with ``block`` reconnects fail until ``unblock_socket``."""
        if block:
            self.socket_blocked.add(tab.id)
        conn = tab.ports.socket.current  # type: ignore[attr-defined]
        if conn is not None:
            conn.drop()

    def unblock_socket(self, tab: Tab) -> None:
        self.socket_blocked.discard(tab.id)

    # driving
    @property
    def now(self) -> float:
        return self.sched.now_ms

    def steps(self) -> list[Step]:
        return self.sched.steps()

    def fire(self, step: Step) -> None:
        self.sched.fire(step)

    def settle(self, max_steps: int = 10_000) -> int:
        """Deliver every non-timer step, oldest first; returns how many fired."""
        n = 0
        while True:
            pending = self.sched.deliveries()
            if not pending:
                return n
            n += 1
            if n > max_steps:
                raise RuntimeError(f"world did not settle: {pending[:5]}")
            self.sched.fire(pending[0])

    def advance(self, ms: float) -> None:
        """Settle, then let ``ms`` of time pass, firing due timers in order (settling after each)."""
        target = self.sched.now_ms + ms
        self.settle()
        while True:
            t = self.sched.next_timer()
            if t is None or (t.due or 0) > target:
                break
            self.sched.fire(t)
            self.settle()
        self.sched.now_ms = max(self.sched.now_ms, target)

    def tick(self, ms: float) -> None:
        """Let ``ms`` pass firing only the due timers (no other delivery), in time order."""
        target = self.sched.now_ms + ms
        while True:
            t = self.sched.next_timer()
            if t is None or (t.due or 0) > target:
                break
            self.sched.fire(t)
        self.sched.now_ms = max(self.sched.now_ms, target)

    # checks
    def downloads_of(self, job_id: str) -> list[DownloadRecord]:
        return [d for d in self.downloads if d.job_id == job_id]

    def cancel_clicks(self) -> list[tuple[int, str, str]]:
        """``(mark, tab, job_id)`` of every cancel click; a click made before the tab knew
        its job (while starting) counts for the first job the same page showed afterwards
        (its 202 or the 409's active job), else for the job its start request made (the
        server's job with that start token: the page closed or reloaded first)."""
        out = []
        for at, tab, kind, job_id, status in self.user_actions:
            if kind != "cancel":
                continue
            if job_id is None and status == "starting":
                token, history = self.cancel_context.get(at, (None, []))
                job_id = next((j for m, j in history if m > at), None)
                if job_id is None and token is not None:
                    job_id = next((j.id for j in self.server.jobs.values() if j.start_token == token), None)
            if job_id is not None:
                out.append((at, tab, job_id))
        return out

    def violations(self) -> list[str]:
        """Safety invariants over everything that happened so far (empty when all hold):
        at most one download per job (C4); no download of a job after a cancel click on it
        (C1); no download of a job the server had not completed; no store error."""
        out = []
        by_job: dict[str, int] = {}
        for d in self.downloads:
            by_job[d.job_id] = by_job.get(d.job_id, 0) + 1
        out += [f"{job}: {n} downloads" for job, n in by_job.items() if n > 1]
        for at, tab, job_id in self.cancel_clicks():
            out += [f"{job_id}: downloaded by {d.tab} after a cancel click in {tab}"
                    for d in self.downloads if d.job_id == job_id and d.step >= at]
        clicked = {job_id for _, _, job_id in self.cancel_clicks()}
        # R2: a cancel reaching the server before the browser's download request wins (410);
        # without any cancel click a failed download is a bug.
        out += [f"{d.job_id}: downloaded but server says {d.server_status}" for d in self.downloads
                if d.server_status not in (None, 200) and d.job_id not in clicked]
        out += [f"store error in {where}: {exc!r}" for exc, where in self.errors]
        return out
