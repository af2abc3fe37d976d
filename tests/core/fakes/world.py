"""``World``: a deterministic browser + server world with N tabs, and ``Tab``, one open page.

- ``world.steps()``: the steps that may happen next (see ``scheduler``); ``world.fire(step)``:
  deliver one; ``world.settle()``: deliver non-timer steps oldest first until none is left;
  ``world.advance(ms)``: settle, then fire timers in time order (settling after each) up to
  ``now + ms``; ``world.tick(ms)``: fire only the due timers.
- Tabs belong to browsers (``open_tab(browser="b2")``; the first is ``b1``): the tabs of
  one browser share its ``Browser`` (storage, BroadcastChannel bus, Web Locks and browser
  id); every browser talks to the one server, as the same user.
- User clicks go through ``Tab`` (``start``, ``cancel``, ``download``, ``dismiss``,
  ``show``, ``close``; ``world.reload(tab)``) and are logged in ``world.user_actions``;
  ``world.job_history`` logs which job each tab showed; ``world.cancel_clicks()`` and
  ``world.violations()`` turn them into the safety invariants (``safety``).
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from dataclasses import dataclass

from app import identity, store
from app.crosstab import StorageChannel, StorageClaimLocks
from app.export_hook import ExportController, create_export_controller
from app.models import ExportJob
from app.ports import Ports
from app.routes import download_path

from . import safety
from .ports import (
    DownloadRecord, FakeChannelBus, FakeClockPort, FakeDownloader, FakeHttp, FakeLockManager, FakeLog, FakeSocket,
    FakeStorage, FakeVisibility,
)
from .scheduler import START_MS, Scheduler, Step
from .server import FakeServer


@dataclass
class Browser:
    """One browser (profile): what its tabs share. ``name`` is also its browser id."""

    name: str
    storage: FakeStorage
    bus: FakeChannelBus
    locks: FakeLockManager


class Tab:
    """One open page: its ports, the controller of its mounted hook, and user actions."""

    def __init__(self, world: "World", tab_id: str, project_id: int, ports: Ports,
                 controller: ExportController, unmount: Callable[[], None], browser: Browser) -> None:
        self.world = world
        self.browser = browser
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

    def download_link(self, job_id: Optional[str] = None) -> None:
        """Click a plain download link of the job (the browser downloads; no hook involved)."""
        job_id = job_id or (self.job.id if self.job else "")
        self.world.user_actions.append((self.world.mark(), self.id, "download", job_id, self.status))
        self.ports.downloader.download(download_path(job_id))

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
        self.browser.locks.release_all(self.id)
        self.browser.storage.subscribers.pop(self.id, None)
        self.browser.bus.subscribers.pop(self.id, None)
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
        self.browsers: dict[str, Browser] = {}
        first = self.browser("b1")
        self.storage, self.bus, self.locks = first.storage, first.bus, first.locks
        """The first browser's (most tests have one)."""
        self.tabs: dict[str, Tab] = {}
        self.tab_browser: dict[str, str] = {}
        """Tab id -> its browser (closed and reloaded tabs included)."""
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

    def browser(self, name: str) -> Browser:
        """The browser ``name`` (made on first use, with its own storage, bus and locks)."""
        if name not in self.browsers:
            self.browsers[name] = Browser(name, FakeStorage(self), FakeChannelBus(self), FakeLockManager(self))
        return self.browsers[name]

    # tabs
    def open_tab(self, project_id: int = 1, tab_id: Optional[str] = None, channel: str = "broadcast",
                 locks: str = "web", browser: str = "b1") -> Tab:
        """Open a page on ``project_id`` in ``browser``. ``channel="storage"`` uses
        ``StorageChannel`` (no BroadcastChannel); ``locks="storage"`` uses
        ``StorageClaimLocks`` (no Web Locks)."""
        tid = tab_id or f"tab{next(self._tab_ids)}"
        shared = self.browser(browser)
        storage = shared.storage.view(tid)
        clock = FakeClockPort(self, tid)
        browser_id = identity.browser_id(storage, lambda: browser)
        ports = Ports(
            http=FakeHttp(self, tid),
            socket=FakeSocket(self, tid),
            storage=storage,
            channel=StorageChannel(storage, tid) if channel == "storage" else shared.bus.view(tid),
            locks=StorageClaimLocks(storage, clock, tid) if locks == "storage" else shared.locks.view(tid),
            clock=clock,
            downloader=FakeDownloader(self, tid, browser),
            visibility=FakeVisibility(),
            log=FakeLog(),
            tab_id=tid,
            browser_id=browser_id,
            # A reloaded fake tab keeps its id (the traces name tabs by it), where a real page
            # gets a fresh random one: the world hands out start tokens instead.
            new_token=lambda: f"{browser_id}.start-{next(self._start_tokens)}",
        )
        controller, unmount = create_export_controller(project_id, ports)
        tab = Tab(self, tid, project_id, ports, controller, unmount, shared)
        self.tab_browser[tid] = browser
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
        """Close ``tab`` and open a new page with the same id, project and browser."""
        tab.close()
        del self.tabs[tab.id]
        return self.open_tab(tab.project_id, tab.id, browser=tab.browser.name, **kwargs)

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

    def fail_download(self, step: Step) -> None:
        """The browser's download ``step`` never reaches the server (network, server down)."""
        self.sched.drop(step)

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
        """The safety invariants (``safety``: I1, I2, I9, I10, I12, E0) over everything that
        happened so far; empty when all hold."""
        return (safety.download_violations(self) + safety.display_violations(self)
                + safety.storage_violations(self) + safety.store_error_violations(self))
