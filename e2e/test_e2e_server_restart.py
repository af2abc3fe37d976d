"""E11 of issue 7: cancel while the server is unreachable, in real Chromium against a server
of its own that the test stops (process terminate) and starts again on the same port and
data directory.

The page must show "cancelling" and never download while the server is away; once the
server is back, R7 runs the interrupted job again and the page's retried cancel (C2) must
still win: the server ends with the job cancelled and no archive, the page "cancelled".
"""
from __future__ import annotations

import time

import pytest

from e2e.conftest import (
    RECORDER_JS, allow_console_errors, close_user_session, job_state, new_user_session, persist_key,
    set_hooks, settle_downloads, start_server, stop_server, wait_for_job, wait_progress_above, wait_status,
)


@pytest.fixture
def own_server(tmp_path):
    """A server of this test alone; ``holder["server"]`` is the running one (the test
    replaces it when it restarts the server), stopped at the end."""
    holder = {"server": start_server(tmp_path / "data")}
    yield holder
    stop_server(holder["server"])


def test_e11_cancel_while_server_unreachable_is_settled_when_it_returns(own_server, browser):
    server = own_server["server"]
    port = int(server.base_url.rsplit(":", 1)[1])
    session = new_user_session(server, browser)
    session.context.add_init_script(RECORDER_JS)
    try:
        set_hooks(server, delay_per_checkpoint_ms=200, hold_before_complete=True)
        tab = session.open_tab()
        tab.page.click("#export-button")
        wait_progress_above(tab, 0)
        job_id = tab.job_id()
        project_id = tab.project_id()

        # While the server is away the browser itself logs the refused connections.
        allow_console_errors([tab], r"net::ERR_CONNECTION_REFUSED|WebSocket connection to 'ws://[^']+/api/ws' failed")
        stop_server(server)  # the worker stops at its next checkpoint; the row stays running (R7)
        tab.reset_record()
        cancel = ("POST", f"{server.base_url}/api/exports/{job_id}/cancel")
        tab.page.click("#cancel-button")
        wait_status(tab, "cancelling", timeout_ms=5_000)
        # C2: the failed cancel is retried with backoff; wait for two attempts to fail.
        deadline = time.monotonic() + 20
        while tab.sent.count(cancel) < 2 and time.monotonic() < deadline:
            tab.page.wait_for_timeout(100)
        assert tab.sent.count(cancel) >= 2, "the cancel was not retried while the server was away"
        assert tab.status() == "cancelling"
        assert tab.storage(persist_key(project_id)) is None, "C5: cancel clears the persisted job at once"

        server = own_server["server"] = start_server(server.data_dir, port=port)
        wait_status(tab, "cancelled", timeout_ms=60_000)
        state = wait_for_job(server, job_id, lambda s: not s["archive_exists"] and not s["partial_exists"])
        assert state["status"] == "cancelled" and state["delivered"] is False, state
        settle_downloads([tab], server, job_id, expected=0)
        assert tab.status() == "cancelled" and tab.status_text() == "Export cancelled."
        statuses = tab.status_history()
        assert statuses == ["running", "cancelling", "cancelled"], statuses
        assert tab.download_starts() == []
        assert tab.storage(persist_key(project_id)) is None
        assert job_state(server, job_id)["status"] == "cancelled"
    finally:
        close_user_session(session)
