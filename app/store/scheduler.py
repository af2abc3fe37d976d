"""The store's scheduler: who is reading and who owns what right now, the queue of stale
effects and its flush, batches, scopes, and where errors go (see ``app.store``)."""
from __future__ import annotations

import heapq
import itertools
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

T = TypeVar("T")

MAX_FLUSH_ROUNDS = 100

ErrorHandler = Callable[[BaseException, str], None]
_log = logging.getLogger("app.store")


def _default_error_handler(exc: BaseException, where: str) -> None:
    _log.error("store: %s raised %r", where, exc, exc_info=exc)


_error_handler: ErrorHandler = _default_error_handler


def set_error_handler(handler: Optional[ErrorHandler]) -> ErrorHandler:
    """Install ``handler(exception, where)`` for errors in effects, cleanups and render
    functions; ``None`` restores the default (logging). Returns the previous handler."""
    global _error_handler
    previous = _error_handler
    _error_handler = handler or _default_error_handler
    return previous


def report_error(exc: BaseException, where: str) -> None:
    """Send ``exc`` to the current error handler; a failing handler is logged, not raised."""
    try:
        _error_handler(exc, where)
    except Exception as inner:  # the handler itself must never break a flush
        _log.error("store: error handler raised %r while reporting %r", inner, exc)


class _Runtime:
    """Global (per interpreter) scheduler state."""

    def __init__(self) -> None:
        self.observer: Optional[Any] = None
        """The computed or effect (``app.store.nodes._Observer``) that records reads now."""
        self.owner: Optional[Any] = None
        """The ``Scope`` or effect that owns what is created now."""
        self.batch_depth = 0
        self.flushing = False
        self.pending: list[tuple[int, Any]] = []
        """Stale effects (``app.store.effects._Effect``) by creation order."""
        self.pending_ids: set[int] = set()
        self.ids = itertools.count(1)


_rt = _Runtime()



def in_batch(fn: Callable[[], Any]) -> None:
    """Call ``fn`` as a batch of its own: the effects it makes stale run after it (and
    after any enclosing batch), never inside it."""
    _rt.batch_depth += 1
    try:
        fn()
    finally:
        _rt.batch_depth -= 1
    _flush_if_idle()


def _adopt(item: Any) -> None:
    owner = _rt.owner
    if owner is not None:
        owner._children.append(item)


def _flush_if_idle() -> None:
    if _rt.batch_depth == 0 and not _rt.flushing:
        _flush()


def _flush() -> None:
    _rt.flushing = True
    try:
        rounds = 0
        while _rt.pending:
            rounds += 1
            if rounds > MAX_FLUSH_ROUNDS:
                dropped = len(_rt.pending)
                _rt.pending.clear()
                _rt.pending_ids.clear()
                report_error(RuntimeError(f"effect cycle: {dropped} effects still stale after "
                                          f"{MAX_FLUSH_ROUNDS} rounds"), "flush")
                break
            ran: set[int] = set()
            deferred: list[tuple[int, Any]] = []
            while _rt.pending:
                eid, eff = heapq.heappop(_rt.pending)
                if eid in ran:  # stale again after running this round: next round
                    deferred.append((eid, eff))
                    continue
                _rt.pending_ids.discard(eid)
                ran.add(eid)
                if eff._disposed:
                    continue
                if eff._should_run():
                    eff._run()
            for item in deferred:
                heapq.heappush(_rt.pending, item)
    finally:
        _rt.flushing = False


@contextmanager
def batch() -> Iterator[None]:
    """Defer effects until the outermost ``with batch():`` exits (also on exceptions)."""
    _rt.batch_depth += 1
    try:
        yield
    finally:
        _rt.batch_depth -= 1
        _flush_if_idle()


def untracked(fn: Callable[[], T]) -> T:
    """Call ``fn`` without recording its reads as dependencies of the running computation."""
    prev = _rt.observer
    _rt.observer = None
    try:
        return fn()
    finally:
        _rt.observer = prev


class Scope:
    """An owner of effects and computeds. ``with scope:`` makes it the owner of what is
    created inside; ``dispose()`` disposes all of them (latest first) and is idempotent."""

    def __init__(self) -> None:
        self._children: list[Any] = []
        self._saved: list[Any] = []
        self.disposed = False

    def __enter__(self) -> "Scope":
        if self.disposed:
            raise RuntimeError("scope already disposed")
        self._saved.append(_rt.owner)
        _rt.owner = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _rt.owner = self._saved.pop()

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` with this scope as the owner."""
        with self:
            return fn()

    def dispose(self) -> None:
        if self.disposed:
            return
        self.disposed = True
        children, self._children = self._children, []
        for child in reversed(children):
            try:
                child.dispose()
            except Exception as exc:
                report_error(exc, "scope dispose")


def detached(fn: Callable[[], T]) -> T:
    """Call ``fn`` with no owner and no observer: what it creates lives until disposed
    explicitly."""
    return run_owned(None, fn)


def run_owned(owner: Optional[Scope], fn: Callable[[], T]) -> T:
    """Call ``fn`` untracked with ``owner`` (a ``Scope`` or None) as the owner."""
    prev_obs, prev_owner = _rt.observer, _rt.owner
    _rt.observer, _rt.owner = None, owner
    try:
        return fn()
    finally:
        _rt.observer, _rt.owner = prev_obs, prev_owner
