"""Defects of the product the checker found (``checker.scenarios.FINDINGS``). Each test
runs the small search that showed the defect and asserts that it finds nothing now that
the product is fixed (regression tests); a failure prints the shrunk counterexample, the
invariant it breaks and the fix (see also app/DECISIONS.md, "Checker")."""
from __future__ import annotations

import pytest

from .checker import shrink
from .checker.scenarios import FINDINGS, Finding


@pytest.mark.parametrize("finding", FINDINGS, ids=lambda f: f"{f.key}-{f.name}")
def test_the_checker_finds_no_violation(finding: Finding):
    result = finding.search.run()
    print(f"\n{finding.name}: {result.summary()}")
    if result.counterexample is not None:
        small = shrink(finding.search.scenario, result.counterexample)
        message = (f"{finding.key} {finding.name} breaks {finding.breaks}: {finding.what}\nproposed fix: {finding.fix}\n"
                   f"{small.render()}")
        print(message)
        raise AssertionError(message)
