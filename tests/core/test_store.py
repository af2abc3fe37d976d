"""Semantics of ``app.store`` as its module docstring states them."""
from __future__ import annotations

import math

import pytest

from app.models import ExportOptions
from app.store import (
    MAX_FLUSH_ROUNDS, Scope, batch, computed, default_equals, effect, signal, untracked,
)


def test_signal_value_set_and_peek():
    s = signal(1)
    assert s.value == 1 and s.peek() == 1
    s.value = 2
    assert s.value == 2
    assert s.set(2) is False
    assert s.update(lambda v: v + 1) is True and s.peek() == 3


@pytest.mark.parametrize("a,b,equal", [
    (1, 1, True), (1, True, False), (1, 1.0, False), ("x", "x", True),
    ([1], [1], True), (ExportOptions(), ExportOptions(), True),
    (ExportOptions(), ExportOptions(include_images=True), False),
    (float("nan"), float("nan"), False), (None, None, True),
])
def test_default_equality(a, b, equal):
    assert default_equals(a, b) is equal


def test_nan_equals_only_itself_and_raising_eq_counts_as_change():
    nan = math.nan
    assert default_equals(nan, nan)

    class Weird:
        def __eq__(self, other):
            raise RuntimeError("no")

    assert not default_equals(Weird(), Weird())


def test_equal_write_notifies_nobody():
    s = signal([1, 2])
    runs = []
    effect(lambda: runs.append(s.value))
    s.value = [1, 2]
    assert runs == [[1, 2]]
    s.value = [1, 2, 3]
    assert runs == [[1, 2], [1, 2, 3]]


def test_custom_equality():
    s = signal(1, equals=lambda a, b: a is b)
    runs = []
    effect(lambda: runs.append(s.value))
    s.value = [1]
    s.value = [1]  # a different list: a change under identity
    assert len(runs) == 3


def test_computed_is_lazy_and_cached():
    s = signal(2)
    calls = []
    c = computed(lambda: calls.append(1) or s.value * 10)
    assert calls == []
    assert c.value == 20 and c.value == 20 and c.peek() == 20
    assert len(calls) == 1
    s.value = 3
    assert len(calls) == 1  # still lazy: nobody read it
    assert c.value == 30 and len(calls) == 2


def test_computed_equal_result_does_not_rerun_readers():
    s = signal(1)
    parity = computed(lambda: s.value % 2)
    runs = []
    effect(lambda: runs.append(parity.value))
    s.value = 3
    assert runs == [1]
    s.value = 4
    assert runs == [1, 0]


def test_computed_error_reaches_the_reader_and_recovers():
    s = signal(0)
    c = computed(lambda: 10 // s.value)
    with pytest.raises(ZeroDivisionError):
        _ = c.value
    s.value = 5
    assert c.value == 2


def test_diamond_runs_the_effect_once_per_change():
    s = signal(1)
    a = computed(lambda: s.value + 1)
    b = computed(lambda: s.value * 2)
    runs = []
    effect(lambda: runs.append((a.value, b.value)))
    s.value = 2
    assert runs == [(2, 2), (3, 4)]


def test_auto_tracking_follows_the_branch_taken():
    flag, x, y = signal(True), signal("x"), signal("y")
    runs = []
    effect(lambda: runs.append(x.value if flag.value else y.value))
    y.value = "y2"  # not read in the last run: no re-run
    assert runs == ["x"]
    flag.value = False
    x.value = "x2"  # no longer read
    assert runs == ["x", "y2"]


def test_explicit_deps_are_exactly_the_list():
    a, b = signal(1), signal(1)
    runs = []
    effect(lambda: runs.append((a.value, b.value)), deps=[a])
    b.value = 2
    assert runs == [(1, 1)]
    a.value = 2
    assert runs == [(1, 1), (2, 2)]


def test_explicit_deps_must_be_signals():
    with pytest.raises(TypeError):
        effect(lambda: None, deps=[42])


def test_cleanup_runs_before_rerun_and_on_dispose():
    s = signal(1)
    log = []

    def fx():
        v = s.value
        log.append(f"run {v}")
        return lambda: log.append(f"cleanup {v}")

    dispose = effect(fx)
    s.value = 2
    dispose()
    s.value = 3
    assert log == ["run 1", "cleanup 1", "run 2", "cleanup 2"]


def test_batch_defers_effects_to_the_outermost_exit():
    a, b = signal(0), signal(0)
    runs = []
    effect(lambda: runs.append((a.value, b.value)))
    with batch():
        a.value = 1
        with batch():
            b.value = 1
        assert runs == [(0, 0)]
    assert runs == [(0, 0), (1, 1)]


def test_batch_flushes_even_when_its_body_raises():
    s = signal(0)
    runs = []
    effect(lambda: runs.append(s.value))
    with pytest.raises(ValueError):
        with batch():
            s.value = 1
            raise ValueError("boom")
    assert runs == [0, 1]


def test_effects_run_in_creation_order_once_per_flush():
    s = signal(0)
    order = []
    effect(lambda: order.append(("first", s.value)))
    effect(lambda: order.append(("second", s.value)))
    effect(lambda: order.append(("third", s.value)))
    order.clear()
    with batch():
        s.value = 1
        s.value = 2
    assert order == [("first", 2), ("second", 2), ("third", 2)]


def test_an_effect_stale_again_runs_in_the_next_round():
    a, b = signal(0), signal(0)
    order = []
    effect(lambda: order.append(("reads b", b.value)))
    effect(lambda: order.append(("copies a to b", a.value)) or b.set(a.value))
    order.clear()
    a.value = 5
    assert order == [("copies a to b", 5), ("reads b", 5)]


def test_an_effect_writing_during_its_first_run_is_not_reentered():
    s = signal(0)
    depth = {"now": 0, "max": 0}

    def fx():
        depth["now"] += 1
        depth["max"] = max(depth["max"], depth["now"])
        if s.value < 3:
            s.value = s.value + 1
        depth["now"] -= 1

    effect(fx)
    assert s.peek() == 3 and depth["max"] == 1


def test_an_exception_in_an_effect_is_reported_and_others_still_run(errors):
    s = signal(0)
    seen = []

    def bad():
        if s.value == 1:
            raise RuntimeError("effect failed")

    effect(bad)
    effect(lambda: seen.append(s.value))
    s.value = 1
    s.value = 2
    assert seen == [0, 1, 2]
    assert [str(e) for e, _ in errors] == ["effect failed"]


def test_an_effect_cycle_is_reported_not_endless(errors):
    s = signal(0)
    runs = []
    effect(lambda: runs.append(1) or s.set(s.value + 1))
    assert len(runs) <= MAX_FLUSH_ROUNDS + 2
    assert any("cycle" in str(e) for e, _ in errors)
    other = signal(0)
    seen = []
    effect(lambda: seen.append(other.value))
    other.value = 1
    assert seen == [0, 1]  # the store still works


def test_scope_disposes_everything_created_inside():
    s = signal(0)
    log = []
    scope = Scope()
    with scope:
        effect(lambda: log.append(s.value) or (lambda: log.append("cleanup")))
        c = computed(lambda: s.value + 1)
        assert c.value == 1
    s.value = 1
    scope.dispose()
    scope.dispose()
    s.value = 2
    assert log == [0, "cleanup", 1, "cleanup"]
    assert c.peek() == 1  # a disposed computed keeps its last value, stops following


def test_effects_created_by_an_effect_are_disposed_before_its_rerun():
    outer, inner = signal(0), signal(0)
    log = []

    def parent():
        n = outer.value
        effect(lambda: log.append((n, inner.value)))

    effect(parent)
    outer.value = 1
    log.clear()
    inner.value = 1
    assert log == [(1, 1)]  # only the child of the latest parent run


def test_untracked_reads_do_not_subscribe():
    a, b = signal(0), signal(0)
    runs = []
    effect(lambda: runs.append((a.value, untracked(lambda: b.value))))
    b.value = 1
    assert runs == [(0, 0)]
