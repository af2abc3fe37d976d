"""``ThreadFeed``: a worker thread fed through a bounded queue, whose error reaches the feeder.

Used where the archive's work runs on a thread of its own: the XLSX library, which pulls its
rows from a generator while it saves (``metrics_io.XlsxMetricsWriter``), and deflating a
member while its text is produced (``deflate.ThreadDeflater``; zlib releases the GIL).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Optional


class ThreadFeed:
    """Starts ``work(take)`` on a daemon thread named ``name``; ``take()`` (on that thread)
    returns the next item ``put`` (blocking). At most ``maxsize`` items wait.

    Whatever ``work`` raises (any ``BaseException``) is kept as ``error`` and raised in the
    feeder's thread by its next ``put`` or by ``finish``; once the thread has ended without an
    error, ``put`` raises ``ValueError(ended)``. Only one thread may feed it. Raises
    ``RuntimeError`` from the constructor if the thread cannot be started."""

    def __init__(self, work: Callable[[Callable[[], Any]], None], name: str, maxsize: int, ended: str) -> None:
        self.error: Optional[BaseException] = None
        self._ended = ended
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """Whether the thread is still running."""
        return self._thread.is_alive()

    def put(self, item: Any) -> None:
        """Hand ``item`` over, waiting while the queue is full; raises the thread's error as
        soon as there is one (so a feeder never waits for a thread that has stopped taking)."""
        while True:
            if self.error is not None:
                raise self.error
            if not self._thread.is_alive():
                self._thread.join()  # it may have stored its error after the test above
                if self.error is not None:
                    raise self.error
                raise ValueError(self._ended)
            try:
                self._queue.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def finish(self, end: Any) -> None:
        """Put ``end`` (the item that makes ``work`` return), wait for the thread, and raise its
        error if it had one."""
        self.put(end)
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self, stop: Any) -> None:
        """Drop the items still waiting, put ``stop`` (the item that makes ``work`` give up) and
        wait for the thread; nothing is raised. Does nothing once the thread has ended."""
        if not self._thread.is_alive():
            return
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._queue.put(stop)  # room for it now: only this thread puts
        self._thread.join()

    def _run(self, work: Callable[[Callable[[], Any]], None]) -> None:
        try:
            work(self._queue.get)
        except BaseException as exc:  # noqa: BLE001 - handed to the feeder's thread
            self.error = exc
