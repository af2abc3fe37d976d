"""A model checker for the export client core (issue 3).

``sim``: a ``Scenario`` (tabs, a budget of environment moves) and a ``Sim`` that drives a
``World`` of fake tabs one ``Move`` at a time and records a readable trace.
``invariants``: the checks I1-I8 run after every move and at quiescence.
``scenarios``: the small scenarios and bounds of the exhaustive mode, and the findings.
``search``: the exhaustive depth-bounded DFS (with state hashing), the fair run to
quiescence, replay and counterexample shrinking. ``stateful``: the hypothesis
``RuleBasedStateMachine`` over the same moves. ``mutants``: the defects of the original
React hook, put back one at a time by monkeypatching the product in tests.
"""
from __future__ import annotations

from .invariants import FINAL_CODES, STEP_CODES
from .search import Counterexample, SearchResult, explore, finish, replay, shrink
from .sim import Move, Scenario, Sim

__all__ = ["Counterexample", "FINAL_CODES", "Move", "STEP_CODES", "Scenario", "SearchResult", "Sim",
           "explore", "finish", "replay", "shrink"]
# ``scenarios`` (the searches, ``baseline``, ``FINDINGS``), ``mutants`` and ``stateful`` are
# imported by the tests that use them.
