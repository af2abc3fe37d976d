"""Fixtures of the core tests: a fresh ``World`` that must end without store errors."""
from __future__ import annotations

from typing import Iterator

import pytest

from app import store

from .fakes import World


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    try:
        yield w
        assert [f"{where}: {exc!r}" for exc, where in w.errors] == []
    finally:
        w.close()


@pytest.fixture
def errors() -> Iterator[list]:
    """Collects what the store reports to its error handler during the test."""
    seen: list = []
    previous = store.set_error_handler(lambda exc, where: seen.append((exc, where)))
    try:
        yield seen
    finally:
        store.set_error_handler(previous)
