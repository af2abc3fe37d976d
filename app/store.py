"""A small synchronous reactive store: signals, computeds, effects, batches, scopes.

Model (the same in CPython and in Pyodide; single threaded, no event loop needed):

- ``Signal``: a value cell. ``.value`` reads it (and subscribes the running tracked
  computation), assigning ``.value`` writes it, ``.peek()`` reads without subscribing.
- ``computed(fn)``: a derived value. Lazy: ``fn`` runs on the first read and again only
  when one of the nodes it read changed since. Cached: reading twice without a change
  runs ``fn`` once. A computed whose recomputed value is *equal* to the old one does
  not count as changed for its readers (equality bail-out propagates).
- ``effect(fn, deps=None)``: runs ``fn`` at once and again after any dependency changed.
  ``deps=None`` auto-tracks: the dependencies are the signals/computeds read during the
  last run. ``deps=[a, b]`` is an explicit list: exactly those nodes are dependencies and
  reads inside ``fn`` are untracked. ``fn`` may return a cleanup callable, which runs
  before the next run and on disposal. ``effect`` returns a dispose function.
- ``batch()``: a context manager; writes inside it notify nobody until the outermost
  batch exits, then effects run once.
- ``Scope``: an owner. Effects and computeds created while a scope is active (``with
  scope:``) belong to it and ``scope.dispose()`` disposes them all. An effect is itself
  the owner of what its ``fn`` creates; those are disposed before each re-run.

Equality (used to decide whether a write is a change): ``a is b``, otherwise
``type(a) is type(b) and a == b``; an ``==`` that raises or returns a non-bool counts as
"not equal". So ``1`` and ``True`` or ``1`` and ``1.0`` differ, two equal pydantic models
are equal, and a NaN equals only itself (same object). ``Signal(v, equals=f)`` and
``computed(fn, equals=f)`` take another predicate (``app.hooks`` uses ``object_is``).

Scheduling: an effect runs synchronously after the write that made it stale, or at the
end of the outermost ``batch``. Pending effects run in creation order, each at most once
per flush round; an effect made stale again by a later effect of the same round runs in
the next round. More than ``MAX_FLUSH_ROUNDS`` rounds means a cycle: it is reported and
the remaining effects are dropped until their next change. An exception raised by an
effect, a cleanup or a computed read by an effect goes to the error handler
(``set_error_handler``; default: ``logging`` at error level) and does not stop the other
effects or leave the store in a broken state. Writes made inside a computed's ``fn`` are
not supported.
"""
from __future__ import annotations

import heapq
import itertools
import logging
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterable, Iterator, Optional, TypeVar, Union

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


def default_equals(a: Any, b: Any) -> bool:
    """The store's change test: identity, else same type and ``==`` (see module doc)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        result = a == b
    except Exception:
        return False
    return result if isinstance(result, bool) else False


class _Runtime:
    """Global (per interpreter) scheduler state."""

    def __init__(self) -> None:
        self.observer: Optional["_Observer"] = None  # who records reads right now
        self.owner: Optional[Union["Scope", "_Effect"]] = None
        self.batch_depth = 0
        self.flushing = False
        self.pending: list[tuple[int, "_Effect"]] = []
        self.pending_ids: set[int] = set()
        self.ids = itertools.count(1)


_rt = _Runtime()


class _Node:
    """Something that can be read and depended on."""

    def __init__(self) -> None:
        self._version = 0
        self._subscribers: dict[int, "_Observer"] = {}

    def _track(self) -> None:
        obs = _rt.observer
        if obs is not None:
            obs._record(self)

    def _notify(self) -> None:
        for sub in list(self._subscribers.values()):
            sub._mark_stale()

    def _refresh(self) -> None:
        """Bring the cached value up to date (only computeds have work to do)."""


class _Observer:
    """Something that reads nodes and must hear when they change."""

    _id: int

    def __init__(self) -> None:
        self._deps: dict[_Node, int] = {}
        self._recording: Optional[dict[_Node, int]] = None

    def _record(self, node: _Node) -> None:
        if self._recording is not None and node not in self._recording:
            node._refresh()
            self._recording[node] = node._version

    def _mark_stale(self) -> None:
        raise NotImplementedError

    def _set_deps(self, deps: dict[_Node, int]) -> None:
        for node in self._deps:
            if node not in deps:
                node._subscribers.pop(self._id, None)
        for node in deps:
            node._subscribers[self._id] = self
        self._deps = deps

    def _deps_changed(self) -> bool:
        for node, seen in list(self._deps.items()):
            node._refresh()
            if node._version != seen:
                return True
        return False


class Signal(_Node, Generic[T]):
    """A writable reactive value. ``equals(old, new)`` decides whether a write changes it
    (default ``default_equals``)."""

    def __init__(self, value: T, equals: Callable[[Any, Any], bool] = default_equals) -> None:
        super().__init__()
        self._value = value
        self._equals = equals

    @property
    def value(self) -> T:
        self._track()
        return self._value

    @value.setter
    def value(self, new: T) -> None:
        self.set(new)

    def peek(self) -> T:
        """The value, without subscribing the running computation."""
        return self._value

    def set(self, new: T) -> bool:
        """Write ``new``; returns True when it was a change (and readers were notified)."""
        if self._equals(self._value, new):
            return False
        self._value = new
        self._version += 1
        _rt.batch_depth += 1
        try:
            self._notify()
        finally:
            _rt.batch_depth -= 1
        _flush_if_idle()
        return True

    def update(self, fn: Callable[[T], T]) -> bool:
        """Write ``fn(current value)``; returns True when it was a change."""
        return self.set(fn(self._value))

    def __repr__(self) -> str:
        return f"Signal({self._value!r})"


_STALE, _CLEAN = 0, 1


class Computed(_Node, _Observer, Generic[T]):
    """A lazy cached derived value; read-only ``.value`` and ``.peek()``."""

    def __init__(self, fn: Callable[[], T], equals: Callable[[Any, Any], bool] = default_equals) -> None:
        _Node.__init__(self)
        _Observer.__init__(self)
        self._id = next(_rt.ids)
        self._fn = fn
        self._equals = equals
        self._state = _STALE
        self._has_value = False
        self._cached: Any = None
        self._error: Optional[BaseException] = None
        self._computing = False
        self._disposed = False
        _adopt(self)

    def _mark_stale(self) -> None:
        if self._state == _CLEAN:
            self._state = _STALE
            self._notify()

    def _refresh(self) -> None:
        if self._disposed or self._state == _CLEAN:
            return
        if self._has_value and not self._deps_changed():
            self._state = _CLEAN
            return
        self._recompute()

    def _recompute(self) -> None:
        if self._computing:
            raise RuntimeError("computed depends on itself")
        self._computing = True
        prev_obs, self._recording = _rt.observer, {}
        _rt.observer = self
        try:
            try:
                new = self._fn()
                error = None
            except Exception as exc:  # cached and re-raised to every reader
                new, error = None, exc
        finally:
            _rt.observer = prev_obs
            recorded, self._recording = self._recording, None
            self._computing = False
        self._set_deps(recorded)
        self._state = _CLEAN
        if error is not None:
            self._error = error
            self._has_value = True
            self._version += 1
            return
        changed = not self._has_value or self._error is not None or not self._equals(self._cached, new)
        self._error = None
        self._has_value = True
        if changed:
            self._cached = new
            self._version += 1

    @property
    def value(self) -> T:
        self._refresh()
        self._track()
        if self._error is not None:
            raise self._error
        return self._cached

    def peek(self) -> T:
        """The value, without subscribing the running computation."""
        self._refresh()
        if self._error is not None:
            raise self._error
        return self._cached

    def dispose(self) -> None:
        """Unsubscribe from every dependency; the last value stays readable."""
        self._disposed = True
        self._set_deps({})

    def __repr__(self) -> str:
        return f"Computed({self._cached!r})"


def signal(value: T, equals: Callable[[Any, Any], bool] = default_equals) -> Signal[T]:
    """Create a ``Signal`` holding ``value``."""
    return Signal(value, equals)


def computed(fn: Callable[[], T], equals: Callable[[Any, Any], bool] = default_equals) -> Computed[T]:
    """Create a lazy cached ``Computed`` from ``fn`` (which reads signals/computeds)."""
    return Computed(fn, equals)


Readable = Union[Signal, Computed]


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
    _rt.batch_depth += 1
    try:
        eff._run()
    finally:
        _rt.batch_depth -= 1
    _flush_if_idle()
    return eff.dispose


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
            deferred: list[tuple[int, _Effect]] = []
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
    prev_obs, prev_owner = _rt.observer, _rt.owner
    _rt.observer, _rt.owner = None, None
    try:
        return fn()
    finally:
        _rt.observer, _rt.owner = prev_obs, prev_owner


def run_owned(owner: Optional[Scope], fn: Callable[[], T]) -> T:
    """Call ``fn`` untracked with ``owner`` (a ``Scope`` or None) as the owner."""
    prev_obs, prev_owner = _rt.observer, _rt.owner
    _rt.observer, _rt.owner = None, owner
    try:
        return fn()
    finally:
        _rt.observer, _rt.owner = prev_obs, prev_owner
