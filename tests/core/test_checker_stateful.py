"""Mode (a) of the checker: hypothesis stateful testing over 1-3 tabs (see
``checker.stateful``): 2000 examples, every per-move invariant after every rule, the fair
run to quiescence and I3/I4 at the end of each example."""
from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test

from .checker.stateful import STATS, ExportChecker

EXAMPLES = 2000
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, stateful_step_count=20, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=False,
                    report_multiple_bugs=False, phases=(Phase.explicit, Phase.generate))
"""Deterministic (CI reruns the same examples); hypothesis' shrinking is off because a
stateful example here replays slowly: a failure carries its own trace shrunk by the
checker (``ExportChecker._report``)."""


def test_hypothesis_stateful_checker_finds_no_violation_in_2000_examples():
    before = dict(STATS)
    started = time.perf_counter()
    run_state_machine_as_test(ExportChecker, settings=SETTINGS)
    ran = {k: STATS[k] - before.get(k, 0) for k in STATS if k != "max_tabs"}
    print(f"\nhypothesis checker: {ran['examples']} examples, {ran['moves']} rule moves, "
          f"{ran['finish_moves']} fair moves to quiescence, {ran['downloads']} downloads, "
          f"{ran['cancels']} cancel clicks, up to {STATS['max_tabs']} tabs, {time.perf_counter() - started:.1f} s")
    assert ran["examples"] >= EXAMPLES
    assert ran["downloads"] > 0 and ran["cancels"] > 0  # the examples do reach the interesting parts
