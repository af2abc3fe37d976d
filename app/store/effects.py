"""The store's effects: ``effect(fn, deps=None)`` (see ``app.store``)."""
from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable, Optional

from app.store.nodes import Readable, _Node, _Observer
from app.store.scheduler import _adopt, _rt, in_batch, report_error


class _Effect(_Observer):
    def __init__(self, fn: Callable[[], Any], deps: Optional[Iterable[Readable]]) -> None:
        super().__init__()
        self._id = next(_rt.ids)
        self._fn = fn
        self._explicit = None if deps is None else list(deps)
        for dep in self._explicit or ():
            if not isinstance(dep, _Node):
                raise TypeError(f"effect deps must be signals or computeds, got {dep!r}")
        self._cleanup: Optional[Callable[[], Any]] = None
        self._children: list[Any] = []
        self._disposed = False
        self._ran = False

    def _mark_stale(self) -> None:
        if not self._disposed and self._id not in _rt.pending_ids:
            _rt.pending_ids.add(self._id)
            heapq.heappush(_rt.pending, (self._id, self))

    def _should_run(self) -> bool:
        if not self._ran:
            return True
        try:
            return self._deps_changed()
        except Exception:  # a failing computed dep: let the effect see the error itself
            return True

    def _run(self) -> None:
        if self._disposed:
            return
        self._ran = True
        self._teardown()
        prev_obs, prev_owner = _rt.observer, _rt.owner
        _rt.owner = self
        if self._explicit is None:
            self._recording = {}
            _rt.observer = self
        else:
            _rt.observer = None
        try:
            result = self._fn()
            if callable(result):
                self._cleanup = result
        except Exception as exc:
            report_error(exc, f"effect {getattr(self._fn, '__qualname__', self._fn)!s}")
        finally:
            _rt.observer, _rt.owner = prev_obs, prev_owner
            if self._explicit is None:
                recorded, self._recording = self._recording or {}, None
            else:
                recorded = {}
                for node in self._explicit:
                    try:
                        node._refresh()
                    except Exception as exc:
                        report_error(exc, "computed dependency")
                    recorded[node] = node._version
            self._set_deps(recorded)
            # A dependency written during this very run (before this effect subscribed to
            # it) makes the effect stale at once.
            if any(node._version != seen for node, seen in recorded.items()):
                self._mark_stale()

    def _teardown(self) -> None:
        children, self._children = self._children, []
        for child in reversed(children):
            child.dispose()
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            try:
                cleanup()
            except Exception as exc:
                report_error(exc, "effect cleanup")

    def dispose(self) -> None:
        if self._disposed:
            return
        self._disposed = True
        self._set_deps({})
        self._teardown()


def effect(fn: Callable[[], Any], deps: Optional[Iterable[Readable]] = None) -> Callable[[], None]:
    """Run ``fn`` now and after each change of its dependencies (see module doc).

    ``deps``: None = auto-track the reads of the last run; a list of ``Signal`` /
    ``Computed`` = exactly those (``TypeError`` for anything else). ``fn`` may return a
    cleanup. Returns ``dispose()``, which runs the cleanup and stops the effect.
    """
    eff = _Effect(fn, deps)
    _adopt(eff)
    # The first run counts as a batch: writes it makes run their effects after it, never
    # inside it (so an effect is never re-entered).
    in_batch(eff._run)
    return eff.dispose


