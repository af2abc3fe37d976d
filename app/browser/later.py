"""Work for a later task: ``Later`` (a queue run by one timer) and ``LaterEffect`` (a store
effect whose re-runs wait for that task).

Why: the task that handles a change of the export state (a click, another tab's message)
should end as soon as the new status is in the page, so the browser can paint it; the
heavy parts of the page (history list, progress details) are rebuilt in the next task.
This is the usual "yield to the main thread after the critical update"; nothing is
skipped, only ordered.

Pure (no ``js``): ``app.browser.dom`` makes the page's ``LATER`` with a ``setTimeout(0)``
timer; tests use a fake one.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Optional

from app.store import detached, effect, report_error


class Later:
    """Runs queued callables in one later task. ``start_timer(run)`` must arrange for
    ``run()`` to be called once, soon, in a task of its own (``setTimeout(run, 0)``).

    Callables run in the order queued; one queued again under the same key before its
    turn runs once, at its first place. An exception goes to the store's error handler
    and does not stop the others."""

    def __init__(self, start_timer: Callable[[Callable[[], None]], Any]) -> None:
        self._start_timer = start_timer
        self._queue: dict[int, Callable[[], Any]] = {}
        self._armed = False

    def call_soon(self, key: int, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` under ``key``."""
        if key not in self._queue:
            self._queue[key] = fn
        if not self._armed:
            self._armed = True
            self._start_timer(self._run)

    def cancel(self, key: int) -> None:
        """Drop what is queued under ``key`` (nothing if there is none)."""
        self._queue.pop(key, None)

    @property
    def pending(self) -> int:
        """How many callables wait for the next task."""
        return len(self._queue)

    def _run(self, *args: Any) -> None:
        self._armed = False
        queue, self._queue = self._queue, {}
        for fn in queue.values():
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - one broken render must not stop the others
                report_error(exc, f"later {getattr(fn, '__qualname__', fn)!s}")


class LaterEffect:
    """A store effect (auto-tracked, like ``effect(fn)``) whose first run happens at once
    and whose re-runs happen through ``later``: once, however many of its dependencies
    changed before that task. Meant for render functions: ``fn`` returns nothing (a
    returned cleanup is ignored).

    How: a change only re-runs a stub that queues the real run; the real run replaces the
    tracking effect by a fresh one, which calls ``fn`` and records what it reads then.
    ``dispose()`` stops it (also a queued run)."""

    _keys = itertools.count(1)

    def __init__(self, fn: Callable[[], Any], later: Later) -> None:
        self.fn = fn
        self.later = later
        self.key = next(LaterEffect._keys)
        self.runs = 0
        self._dispose: Optional[Callable[[], None]] = None
        self.disposed = False

    def start(self) -> "LaterEffect":
        """Run ``fn`` now (the first render) and start tracking; returns self."""
        self._run()
        return self

    def _run(self) -> None:
        if self.disposed:
            return
        if self._dispose is not None:
            self._dispose()
        first = [True]

        def body() -> None:
            if first[0]:
                first[0] = False
                self.runs += 1
                self.fn()
            else:
                self.later.call_soon(self.key, self._run)

        # Detached: this object disposes what it made, so no owner keeps the replaced
        # effects around.
        self._dispose = detached(lambda: effect(body))

    def dispose(self) -> None:
        self.disposed = True
        self.later.cancel(self.key)
        if self._dispose is not None:
            self._dispose()
            self._dispose = None
