"""Fixtures of the import tests: the real microscopy data of shared/data/cells."""
from __future__ import annotations

from pathlib import Path

import pytest

# The repository root's parent holds shared/ (see SOURCES.md there).
CELLS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cells"


@pytest.fixture(scope="session")
def cells_dir() -> Path:
    assert (CELLS / "SOURCES.md").is_file(), f"shared test data not found at {CELLS}"
    return CELLS


_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items):
    # pycocotools 2.0.11's decode trips numpy 2's copy-keyword deprecation on every call;
    # it is the library's, not ours, and would bury real warnings of these tests.
    mark = pytest.mark.filterwarnings(
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
    )
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(mark)
