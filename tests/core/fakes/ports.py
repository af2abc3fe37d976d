"""In-memory fakes of every port of ``app.ports``, asynchronous the way browsers are: nothing
a port does calls back synchronously; each delivery is a ``Step`` of the world's
``Scheduler``.

Tabs share one ``FakeStorage`` (a write fires ``storage`` events in the OTHER tabs), one
``FakeChannelBus`` and one ``FakeLockManager`` (``view(tab)`` gives a tab's port); each tab
has its own ``FakeHttp``, ``FakeSocket``, ``FakeDownloader``, clock port, visibility and log.
"""
from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from app.ports import HttpResponse, Stop

from .server import HANG

if TYPE_CHECKING:
    from .world import World


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
    """One browser's localStorage shared by its tabs (``view(tab)`` gives a tab's port).
    ``writes`` logs every change: ``(downloads handed out so far, tab, key, new value or
    None for a removal)``."""

    def __init__(self, world: "World") -> None:
        self.world = world
        self.data: dict[str, str] = {}
        self.subscribers: dict[str, list[Callable[[str, Optional[str]], None]]] = {}
        self.writes: list[tuple[int, str, str, Optional[str]]] = []

    def view(self, tab: str) -> "TabStorage":
        return TabStorage(self, tab)

    def _changed(self, src: str, key: str, value: Optional[str]) -> None:
        self.writes.append((len(self.world.downloads), src, key, value))
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
    """A file handed to a browser: by which tab of which browser, of which job, when
    (``at_ms``, and ``step``, the world's order mark), and the server's answer to the
    browser's request (None while it has not reached the server, or never will)."""

    tab: str
    job_id: str
    url: str
    filename: Optional[str]
    at_ms: float
    step: int
    server_status: Optional[int] = None
    browser: str = "b1"


class FakeDownloader:
    """Each download is a pending ``download`` step: the browser's request reaching the
    server (``World.fail_download`` drops it: it never does)."""

    def __init__(self, world: "World", tab: str, browser: str = "b1") -> None:
        self.world = world
        self.tab = tab
        self.browser = browser

    def download(self, url: str, filename: Optional[str] = None) -> None:
        m = re.fullmatch(r"/api/exports/([^/]+)/download", url)
        job_id = m.group(1) if m else url
        rec = DownloadRecord(self.tab, job_id, url, filename, self.world.sched.now_ms, self.world.mark(),
                             browser=self.browser)
        self.world.downloads.append(rec)

        def fetch() -> None:
            rec.server_status = self.world.server.download(job_id)

        self.world.sched.enqueue("download", self.tab, f"fetch {url}", fetch, meta=rec)


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
