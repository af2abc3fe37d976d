"""The e2e kit's one allowance (``UserSession.open_tabs``): a new tab whose renderer crashes
before its page is ready is opened again once; a second crash fails. The crash is a real one
(Chromium's ``chrome://crash`` kills the tab's renderer process)."""
from __future__ import annotations

import pytest

from e2e import conftest


def _crashing_first(user, crashes: int):
    """Make ``user.start_tab``'s first ``crashes`` tabs load ``chrome://crash`` instead."""
    start_tab = user.start_tab
    opened = []

    def start(path: str = "/"):
        opened.append(path)
        if len(opened) > crashes:
            return start_tab(path)
        tab = user._new_tab()
        user.tabs.append(tab)
        try:
            tab.page.goto("chrome://crash", wait_until="commit", timeout=5_000)
        except Exception:  # noqa: BLE001 - the navigation dies with the renderer
            pass
        return tab

    user.start_tab = start
    return opened


def test_a_tab_whose_renderer_crashes_at_boot_is_opened_again_once(user):
    before = list(conftest.BOOT_CRASHES)
    opened = _crashing_first(user, crashes=1)
    tab = user.open_tab()
    assert opened == ["/", "/"] and len(conftest.BOOT_CRASHES) == len(before) + 1
    assert tab.page.locator("body").get_attribute("data-ready") == "true"
    assert user.tabs == [tab]
    assert "test_a_tab_whose_renderer_crashes_at_boot_is_opened_again_once" in conftest.BOOT_CRASHES[-1]
    conftest.BOOT_CRASHES[:] = before  # a crash made on purpose is not one to report


def test_a_second_crash_of_the_same_tab_fails(user):
    before = list(conftest.BOOT_CRASHES)
    _crashing_first(user, crashes=2)
    with pytest.raises(Exception, match="crashed"):
        user.open_tab()
    conftest.BOOT_CRASHES[:] = before
