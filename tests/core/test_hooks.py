"""``app.hooks`` behaves like React's hooks (call order, bail-out, deps, cleanups, commit)."""
from __future__ import annotations

import math

import pytest

from app.hooks import (
    HookOrderError, deps_changed, mount, object_is, use_callback, use_effect, use_memo, use_reducer,
    use_ref, use_state,
)
from app.store import batch, effect, signal


@pytest.mark.parametrize("a,b,same", [
    (1, 1, True), (10**30, 10**30 + 0, True), ("ab", "a" + "b", True), (None, None, True),
    (math.nan, float("nan"), True), (0.0, -0.0, False), (1, True, False), (1, 1.0, False),
    ([1], [1], False), (tuple([1]), tuple([1]), False), ({}, {}, False),
])
def test_object_is_follows_javascript(a, b, same):
    assert object_is(a, b) is same


def test_deps_changed():
    x = [1]
    assert deps_changed(None, ())
    assert not deps_changed((1, "a", x), (1, "a", x))
    assert deps_changed((1,), (1, 2))
    assert deps_changed((x,), ([1],))


def _counter_component(log):
    holder = {}

    def render():
        count, set_count = use_state(0)
        holder["set"] = set_count
        log.append(count)
        return count

    return render, holder


def test_state_setter_rerenders_and_takes_an_updater():
    log = []
    render, h = _counter_component(log)
    m = mount(render)
    assert m.result.value == 0 and m.render_count == 1
    h["set"](5)
    h["set"](lambda n: n + 1)
    assert log == [0, 5, 6] and m.result.value == 6


def test_setting_an_object_is_equal_value_bails_out():
    log = []
    render, h = _counter_component(log)
    m = mount(render)
    h["set"](0)
    assert m.render_count == 1
    items = []

    def render_list():
        value, set_value = use_state(items)
        h["set_list"] = set_value
        return value

    m2 = mount(render_list)
    h["set_list"](items)
    assert m2.render_count == 1
    h["set_list"]([])  # equal content, another object: React re-renders
    assert m2.render_count == 2


def test_lazy_initial_state_runs_once():
    calls = []

    def render():
        value, set_value = use_state(lambda: calls.append(1) or 7)
        render.set = set_value
        return value

    m = mount(render)
    render.set(8)
    assert calls == [1] and m.result.value == 8


def test_setter_is_stable_and_inert_after_unmount():
    setters = []

    def render():
        _, set_value = use_state(0)
        setters.append(set_value)

    m = mount(render)
    setters[0](1)
    assert setters[0] is setters[1]
    m.unmount()
    m.unmount()
    setters[0](2)
    assert m.render_count == 2 and not m.is_mounted


def test_effect_deps_semantics_and_cleanup_order():
    log = []
    h = {}

    def render():
        a, set_a = use_state(0)
        b, set_b = use_state(0)
        h["a"], h["b"] = set_a, set_b
        use_effect(lambda: log.append("every") or (lambda: log.append("~every")))
        use_effect(lambda: log.append("once") or (lambda: log.append("~once")), [])
        use_effect(lambda: log.append(f"a={a}") or (lambda: log.append(f"~a={a}")), [a])

    m = mount(render)
    assert log == ["every", "once", "a=0"]
    log.clear()
    h["b"](1)
    assert log == ["~every", "every"]
    log.clear()
    h["a"](1)
    assert log == ["~every", "~a=0", "every", "a=1"]  # all cleanups, then all setups
    log.clear()
    m.unmount()
    assert log == ["~every", "~once", "~a=1"]


def test_effects_run_after_the_render_commits():
    seen = []
    box = {}

    def render():
        value, set_value = use_state(1)
        box["set"] = set_value
        use_effect(lambda: seen.append(box["m"].result.peek() if "m" in box else "mounting"))
        return value

    box["m"] = mount(render)
    box["set"](2)
    assert seen == ["mounting", 2]  # the effect of render 2 already sees render 2's result


def test_state_set_inside_an_effect_rerenders_after_the_commit():
    log = []

    def render():
        value, set_value = use_state(0)
        log.append(f"render {value}")
        use_effect(lambda: log.append("effect") or set_value(1), [])
        return value

    m = mount(render)
    assert log == ["render 0", "effect", "render 1"] and m.result.value == 1


def test_memo_callback_ref_identity():
    h = {}

    def render():
        n, set_n = use_state(0)
        k, set_k = use_state(0)
        h["n"], h["k"] = set_n, set_k
        memo = use_memo(lambda: {"n": n}, [n])
        cb = use_callback(lambda: n, [n])
        ref = use_ref(0)
        ref.current += 1
        return memo, cb, ref

    m = mount(render)
    memo1, cb1, ref1 = m.result.value
    h["k"](1)
    memo2, cb2, ref2 = m.result.value
    assert memo1 is memo2 and cb1 is cb2 and ref1 is ref2 and ref2.current == 2
    h["n"](1)
    memo3, cb3, _ = m.result.value
    assert memo3 is not memo2 and memo3 == {"n": 1} and cb3() == 1


def test_use_reducer():
    def render():
        state, dispatch = use_reducer(lambda s, a: s + a, 10)
        render.dispatch = dispatch
        return state

    m = mount(render)
    render.dispatch(5)
    render.dispatch(-2)
    assert m.result.value == 13


def test_hooks_outside_render_raise():
    with pytest.raises(RuntimeError):
        use_state(0)


def test_a_changed_hook_order_is_reported(errors):
    flag = signal(False)

    def render():
        if flag.value:
            use_ref(None)
        use_state(0)
        return "ok"

    m = mount(render)
    flag.value = True
    assert any(isinstance(e, HookOrderError) for e, _ in errors)
    assert m.result.value == "ok" and m.render_count == 1


def test_a_failing_render_commits_nothing(errors):
    fail = signal(False)
    log = []

    def render():
        use_effect(lambda: log.append("effect"))
        if fail.value:
            raise ValueError("render failed")
        return "fine"

    m = mount(render)
    fail.value = True
    assert log == ["effect"] and m.result.value == "fine"
    assert [str(e) for e, _ in errors] == ["render failed"]
    fail.value = False
    assert log == ["effect", "effect"]


def test_a_failing_effect_is_reported_and_the_component_lives_on(errors):
    h = {}

    def render():
        n, set_n = use_state(0)
        h["set"] = set_n

        def fx():
            if n == 1:
                raise RuntimeError("effect failed")

        use_effect(fx, [n])
        return n

    m = mount(render)
    h["set"](1)
    h["set"](2)
    assert m.result.value == 2 and [str(e) for e, _ in errors] == ["effect failed"]


def test_render_follows_store_signals_it_reads():
    s = signal("a")
    m = mount(lambda: s.value.upper())
    s.value = "b"
    assert m.result.value == "B"
    m.unmount()
    s.value = "c"
    assert m.result.value == "B"


def test_sets_in_a_batch_render_once():
    h = {}

    def render():
        a, set_a = use_state(0)
        b, set_b = use_state(0)
        h["a"], h["b"] = set_a, set_b
        return a + b

    m = mount(render)
    with batch():
        h["a"](1)
        h["b"](2)
    assert m.render_count == 2 and m.result.value == 3


def test_result_can_drive_a_store_effect():
    h = {}

    def render():
        n, set_n = use_state(0)
        h["set"] = set_n
        return n

    m = mount(render)
    seen = []
    effect(lambda: seen.append(m.result.value))
    h["set"](1)
    assert seen == [0, 1]
