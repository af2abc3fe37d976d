"""React's hook model on top of ``app.store``.

``mount(render)`` renders ``render()`` at once and again whenever a state it owns
(``use_state``/``use_reducer``) is set to a different value, or a store signal it read
while rendering changes (render is an auto-tracked store effect). Hooks are identified
by call order, as in React: every render must call the same hooks in the same order
(``HookOrderError`` otherwise, reported to the store's error handler).

Commit: after ``render`` returns, ``Mounted.result`` is set to its return value, then the
cleanups of the ``use_effect`` entries whose deps changed run (in hook order), then their
setups run (in hook order), untracked. A state set inside an effect re-renders after the
current commit (never inside it). ``unmount()`` stops rendering and runs every pending
cleanup in hook order. Exceptions from render, effects and cleanups go to the store's
error handler; a failed render commits nothing (its effects do not run).

Deps lists are compared item by item with ``object_is`` (JavaScript's ``Object.is``
transposed to Python): ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str`` and
``bytes`` compare by type and value (NaN is NaN; ``0.0`` and ``-0.0`` differ); every other
object (list, dict, tuple, model) by identity. A deps list of another length counts as
changed. ``deps=None`` means "every render", ``[]`` means "once, on mount".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Generic, Optional, Sequence, TypeVar

from app.store import Scope, Signal, batch, effect, report_error, run_owned

T = TypeVar("T")
S = TypeVar("S")
A = TypeVar("A")

_VALUE_TYPES = (type(None), bool, int, complex, str, bytes)


def object_is(a: Any, b: Any) -> bool:
    """``Object.is`` for Python values (see module doc): True when ``a`` and ``b`` are the
    same value for React's bail-out and deps comparison."""
    if a is b:
        return True
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is float:
        if a != a and b != b:
            return True
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if ta in _VALUE_TYPES:
        return a == b
    return False


def deps_changed(prev: Optional[Sequence[Any]], new: Optional[Sequence[Any]]) -> bool:
    """True when an effect/memo with deps ``new`` must re-run after deps ``prev``."""
    if prev is None or new is None or len(prev) != len(new):
        return True
    return any(not object_is(a, b) for a, b in zip(prev, new))


class HookOrderError(RuntimeError):
    """A render called other hooks (kind or count) than the previous render."""


@dataclass
class Ref(Generic[T]):
    """A mutable box that survives renders (``use_ref``)."""

    current: T


class _StateSlot:
    def __init__(self, component: "_Component", initial: Any) -> None:
        self.signal: Signal[Any] = Signal(initial, equals=object_is)

        def set_value(value: Any) -> None:
            if not component.mounted:
                return
            new = value(self.signal.peek()) if callable(value) else value
            self.signal.set(new)

        self.setter = set_value


class _EffectSlot:
    def __init__(self) -> None:
        self.deps: Optional[tuple[Any, ...]] = None
        self.cleanup: Optional[Callable[[], Any]] = None
        self.committed = False


class _MemoSlot:
    def __init__(self, value: Any, deps: Optional[tuple[Any, ...]]) -> None:
        self.value = value
        self.deps = deps


_current: Optional["_Component"] = None


def _component() -> "_Component":
    if _current is None:
        raise RuntimeError("hooks can only be called while a component renders (inside mount)")
    return _current


class _Component:
    def __init__(self, render_fn: Callable[[], Any]) -> None:
        self.render_fn = render_fn
        self.slots: list[Any] = []
        self.cursor = 0
        self.first = True
        self.mounted = True
        self.render_count = 0
        self.scope = Scope()
        self.result: Signal[Any] = Signal(None, equals=lambda a, b: a is b)
        self.queued: list[tuple[_EffectSlot, Callable[[], Any], Optional[tuple[Any, ...]]]] = []

    def slot(self, kind: type, make: Callable[[], Any]) -> Any:
        i = self.cursor
        self.cursor += 1
        if self.first:
            if i != len(self.slots):
                raise HookOrderError("hook slots out of step")
            item = make()
            self.slots.append(item)
            return item
        if i >= len(self.slots):
            raise HookOrderError(f"render called more hooks than before ({i + 1} > {len(self.slots)})")
        item = self.slots[i]
        if not isinstance(item, kind):
            raise HookOrderError(f"hook #{i + 1} was {type(item).__name__}, now {kind.__name__}")
        return item

    def render(self) -> None:
        global _current
        if not self.mounted:
            return
        prev, _current = _current, self
        self.cursor = 0
        self.queued = []
        try:
            out = self.render_fn()
            if not self.first and self.cursor != len(self.slots):
                raise HookOrderError(f"render called fewer hooks than before "
                                     f"({self.cursor} < {len(self.slots)})")
        except Exception as exc:
            self.queued = []
            report_error(exc, f"render {getattr(self.render_fn, '__qualname__', self.render_fn)!s}")
            return
        finally:
            _current = prev
        self.first = False
        self.render_count += 1
        self.commit(out)

    def commit(self, out: Any) -> None:
        queued, self.queued = self.queued, []
        with batch():
            self.result.set(out)
            for slot, _fn, deps in queued:
                cleanup, slot.cleanup = slot.cleanup, None
                slot.deps = deps
                slot.committed = True
                if cleanup is not None:
                    self._call(cleanup, "effect cleanup")
            for slot, fn, _deps in queued:
                if not self.mounted:
                    break
                result = self._call(fn, "effect")
                if callable(result):
                    slot.cleanup = result

    def _call(self, fn: Callable[[], Any], where: str) -> Any:
        try:
            return run_owned(self.scope, fn)
        except Exception as exc:
            report_error(exc, f"{where} {getattr(fn, '__qualname__', fn)!s}")
            return None

    def unmount(self) -> None:
        if not self.mounted:
            return
        self.mounted = False
        self.scope.dispose()
        for slot in self.slots:
            if isinstance(slot, _EffectSlot) and slot.cleanup is not None:
                cleanup, slot.cleanup = slot.cleanup, None
                self._call(cleanup, "effect cleanup")


class Mounted:
    """A mounted component. ``result`` is a store ``Signal`` holding the last committed
    return value of the render function (read ``.result.value`` inside store effects to
    follow it); ``render_count`` counts committed renders; ``unmount()`` is idempotent."""

    def __init__(self, component: _Component) -> None:
        self._component = component

    @property
    def result(self) -> Signal[Any]:
        return self._component.result

    @property
    def render_count(self) -> int:
        return self._component.render_count

    @property
    def is_mounted(self) -> bool:
        return self._component.mounted

    def unmount(self) -> None:
        self._component.unmount()


def mount(render_fn: Callable[[], Any]) -> Mounted:
    """Render ``render_fn`` (which calls hooks) now and on every state change; see module doc."""
    component = _Component(render_fn)
    with component.scope:
        effect(component.render)
    return Mounted(component)


def use_state(initial: Any) -> tuple[Any, Callable[[Any], None]]:
    """``(value, set_value)``. ``initial`` may be a zero-argument callable (lazy initial
    value, called on the first render only). ``set_value(v)`` or ``set_value(fn)`` with
    ``fn(previous) -> next``; setting a value ``object_is``-equal to the current one does not
    re-render. ``set_value`` is the same object on every render and does nothing after
    unmount."""
    comp = _component()
    slot: _StateSlot = comp.slot(_StateSlot, lambda: _StateSlot(comp, initial() if callable(initial) else initial))
    return slot.signal.value, slot.setter


def use_reducer(reducer: Callable[[S, A], S], initial: S) -> tuple[S, Callable[[A], None]]:
    """``(state, dispatch)``: ``dispatch(action)`` sets ``reducer(state, action)``."""
    state, set_state = use_state(lambda: initial)
    dispatch = use_callback(lambda action: set_state(lambda prev: reducer(prev, action)), [])
    return state, dispatch


def use_ref(initial: T = None) -> Ref[T]:  # type: ignore[assignment]
    """A ``Ref`` whose ``.current`` starts at ``initial``; the same object on every render."""
    comp = _component()
    return comp.slot(Ref, lambda: Ref(initial))


def use_memo(factory: Callable[[], T], deps: Optional[Sequence[Any]]) -> T:
    """``factory()``, recomputed only when ``deps`` changed (None: every render)."""
    comp = _component()
    deps_t = None if deps is None else tuple(deps)
    slot: _MemoSlot = comp.slot(_MemoSlot, lambda: _MemoSlot(factory(), deps_t))
    if slot.deps is not deps_t and deps_changed(slot.deps, deps_t):
        slot.value = factory()
        slot.deps = deps_t
    return slot.value


def use_callback(fn: T, deps: Optional[Sequence[Any]]) -> T:
    """``fn`` as given on the render when ``deps`` last changed (a stable callback)."""
    return use_memo(lambda: fn, deps)


def use_effect(fn: Callable[[], Any], deps: Optional[Sequence[Any]] = None) -> None:
    """Run ``fn`` after the render commits when ``deps`` changed (None: after every
    render; []: once). ``fn`` may return a cleanup, run before the next ``fn`` of this hook
    and on unmount."""
    comp = _component()
    slot: _EffectSlot = comp.slot(_EffectSlot, _EffectSlot)
    deps_t = None if deps is None else tuple(deps)
    if not slot.committed or deps_changed(slot.deps, deps_t):
        comp.queued.append((slot, fn, deps_t))
