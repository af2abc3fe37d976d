"""Proof that the checker can fail: each defect of the original React hook, put back one
at a time by monkeypatching the product in the test (``checker.mutants``), is found by the
same bounded search that finds nothing on the unpatched product, with a printed, shrunk
counterexample. Where this design has a second layer against a defect, the single-layer
mutant is shown masked by it and the mutant without both layers is caught."""
from __future__ import annotations

import pytest

from .checker import shrink
from .checker.mutants import MUTANTS, Mutant
from .checker.scenarios import baseline

CAUGHT = [m for m in MUTANTS if m.expect is not None]
MASKED = [m for m in MUTANTS if m.expect is None]


@pytest.mark.parametrize("mutant", CAUGHT, ids=lambda m: f"{m.key}-{m.name}")
def test_the_checker_catches_the_defect(mutant: Mutant):
    base = baseline(mutant.search)
    assert base.counterexample is None, "the unpatched product fails this search:\n" + base.counterexample.render()
    with pytest.MonkeyPatch.context() as mp:
        mutant.patch(mp)
        found = mutant.search.run()
        assert found.counterexample is not None, f"{mutant.name} not caught: {found.summary()}"
        small = shrink(mutant.search.scenario, found.counterexample)
    trace = small.render()
    print(f"\n{mutant.key} {mutant.name} ({mutant.defect}): {mutant.how}\n  search: {mutant.search.label}\n"
          f"  unpatched: {base.summary()}\n  patched: {found.summary()}\n"
          f"  counterexample: {len(found.counterexample.moves)} explored moves, shrunk to {len(small.moves)} "
          f"({len(small.trace)} trace lines with the setup and the fair run)\n{trace}")
    assert small.violation.split(":")[0] == mutant.expect, trace


@pytest.mark.parametrize("mutant", MASKED, ids=lambda m: f"{m.key}-{m.name}")
def test_a_single_layer_mutant_is_masked_by_the_other_layer(mutant: Mutant):
    base = baseline(mutant.search)
    with pytest.MonkeyPatch.context() as mp:
        mutant.patch(mp)
        found = mutant.search.run()
    print(f"\n{mutant.key} {mutant.name} ({mutant.defect}): masked by {mutant.masked_by}\n  patched: {found.summary()}")
    assert found.counterexample is None, found.counterexample.render()
    assert found.states != base.states or found.moves != base.moves  # the patch did change the behaviour


def test_every_react_defect_of_the_issue_has_a_caught_mutant():
    defects = {m.defect.split(" (")[0] for m in CAUGHT if m.react}
    assert defects == {
        "cancel not clearing completed_job_id", "auto-download without a cancel check",
        "the auto-download effect without current_job in its deps",
        "the WebSocket completion handler without a cancel guard", "the polling handler without a cancel guard",
        "persistence not cleared on cancel", "the auto-download timer not cleared by the effect's cleanup",
        "a download without the lock",
    }
