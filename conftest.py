"""Options of the whole suite (``./test --help`` lists them under "custom options")."""
from __future__ import annotations


def pytest_addoption(parser) -> None:
    parser.addoption(
        "--update-screenshots", action="store_true", default=False,
        help="write the README's screenshots (docs/screenshots/) from e2e/test_page.py; "
             "without it the tests write them to a temporary folder only")
