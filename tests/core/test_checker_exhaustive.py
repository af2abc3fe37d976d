"""Mode (b) of the checker: exhaustive bounded searches of small scenarios (see
``checker.scenarios.EXHAUSTIVE``): every interleaving of the first N moves, or every
interleaving to quiescence within a delay bound. Each prints what it explored."""
from __future__ import annotations

import pytest

from .checker import explore
from .checker.scenarios import EXHAUSTIVE, ONE_TAB, Search, baseline


@pytest.mark.parametrize("search", EXHAUSTIVE, ids=lambda s: s.label)
def test_exhaustive_search_finds_no_violation(search: Search):
    result = baseline(search)
    print(f"\n{search.label}: {result.summary()}; deepest path {result.max_depth} moves")
    assert result.counterexample is None, result.counterexample.render()
    assert result.paths > 0 and result.max_depth >= min(search.depth, 10)


def test_the_one_tab_search_covers_its_whole_state_space():
    """1 tab, start/complete/cancel: every path ends (quiescence) before depth 40, so the
    search is complete, not just bounded; and every outcome a user can reach shows up."""
    result = baseline(Search(ONE_TAB, 40))
    assert result.max_depth < 40
    outcomes = {(tabs, jobs, downloads) for tabs, jobs, downloads in result.finals}
    assert ((("tab1", "downloaded"),), (("job-1", "completed", True),), 1) in outcomes
    assert ((("tab1", "cancelled"),), (("job-1", "cancelled", False),), 0) in outcomes
    assert all(n <= 1 for _, _, n in outcomes)


def test_state_hashing_merges_paths_without_losing_outcomes():
    """Without state hashing the same 1-tab search walks every path; it must reach the
    same final outcomes (the fingerprint abstraction hides nothing they show)."""
    merged = baseline(Search(ONE_TAB, 20))
    full = explore(ONE_TAB, 20, dedup=False)
    print(f"\nwith hashing: {merged.summary()}\nwithout: {full.summary()}")
    assert merged.counterexample is None and full.counterexample is None
    assert merged.finals == full.finals
    assert full.paths > merged.paths and full.moves > merged.moves
