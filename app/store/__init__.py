"""A small synchronous reactive store: signals, computeds, effects, batches, scopes.

Modules: ``nodes`` (``Signal``, ``Computed``), ``effects`` (``effect``) and ``scheduler``
(the flush of stale effects, ``batch``, ``Scope``, the error handler).

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
from app.store.effects import effect
from app.store.nodes import Computed, Readable, Signal, computed, default_equals, signal
from app.store.scheduler import (
    MAX_FLUSH_ROUNDS, ErrorHandler, Scope, batch, detached, report_error, run_owned, set_error_handler, untracked,
)
