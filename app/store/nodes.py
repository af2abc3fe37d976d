"""The store's values: ``Signal`` (written), ``Computed`` (derived, lazy, cached) and the
bookkeeping of who read what (see ``app.store``)."""
from __future__ import annotations

from typing import Any, Callable, Generic, Optional, TypeVar, Union

from app.store.scheduler import _adopt, _rt, in_batch

T = TypeVar("T")


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
        in_batch(self._notify)
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


