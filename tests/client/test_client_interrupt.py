"""Ctrl+C during ``Client.export`` at each stage (issue 21): a real SIGINT reaches the main
thread while the client waits; the client cancels on the server, waits for its answer,
leaves no file and raises ``ExportInterrupted`` (a ``KeyboardInterrupt``) saying how the
cancel ended. After the server has started sending the file, the answer is "already
downloaded" (R4: delivered), reported as such."""
from __future__ import annotations

import threading

import pytest

from testkit.cutting_proxy import Rule
from tests.client.conftest import Hub, interrupt_main_when, leftovers

OPTIONS = {"annotation_formats": ["coco"], "metrics_formats": ["csv"]}


def test_ctrl_c_before_the_start_is_answered_cancels_the_job_the_start_makes(cellhub, hub: Hub, tmp_path):
    with hub.proxy() as proxy:
        held = proxy.add(Rule("POST", r"/exports\?start_token=", hold=True))
        interrupt_main_when(held.matched, delay=0.2)
        with pytest.raises(KeyboardInterrupt) as stopped:
            cellhub.Client(proxy.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "out.zip")
        held.release.set()  # the first request may reach the server now: its token is spent
    assert isinstance(stopped.value, cellhub.ExportInterrupted) and stopped.value.outcome == "cancelled"
    history = hub.history()
    assert [(job["id"], job["status"]) for job in history] == [(stopped.value.job_id, "cancelled")]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("use_websocket", [True, False], ids=["websocket", "polling"])
def test_ctrl_c_while_the_export_runs_cancels_it_and_the_worker_leaves_no_file(cellhub, hub: Hub, tmp_path,
                                                                              use_websocket):
    hub.hooks(hold_before_complete=True)  # running until cancelled
    running = threading.Event()

    def watch(update) -> None:
        if update.job.status == "running":
            running.set()

    interrupt_main_when(running, delay=0.3)
    with pytest.raises(cellhub.ExportInterrupted) as stopped:
        cellhub.Client(hub.url, token=hub.token, use_websocket=use_websocket).export(
            hub.project_id, OPTIONS, tmp_path / "out.zip", progress=watch)
    assert stopped.value.outcome == "cancelled" and "cancelled on the server" in str(stopped.value)
    state = hub.job_state(stopped.value.job_id)
    assert state["status"] == "cancelled" and not state["archive_exists"] and not state["partial_exists"]
    assert leftovers(tmp_path) == []


def test_ctrl_c_after_completion_before_the_download_reaches_the_server_cancels_it(cellhub, hub: Hub, tmp_path):
    with hub.proxy() as proxy:
        held = proxy.add(Rule("GET", "/download$", hold=True))
        interrupt_main_when(held.matched, delay=0.2)
        with pytest.raises(cellhub.ExportInterrupted) as stopped:
            cellhub.Client(proxy.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "out.zip")
    assert stopped.value.outcome == "cancelled"
    state = hub.job_state(stopped.value.job_id)
    assert (state["status"], state["delivered"], state["archive_exists"]) == ("cancelled", False, False)
    assert leftovers(tmp_path) == []


def test_ctrl_c_during_the_download_is_reported_as_already_downloaded_and_keeps_nothing(cellhub, hub: Hub, tmp_path):
    with hub.proxy() as proxy:
        slow = proxy.add(Rule("GET", "/download$", rate=20_000))
        interrupt_main_when(slow.matched, delay=0.5)
        with pytest.raises(cellhub.ExportInterrupted) as stopped:
            cellhub.Client(proxy.url, token=hub.token).export(
                hub.project_id, {**OPTIONS, "include_images": True}, tmp_path / "out.zip")
    assert stopped.value.outcome == "already downloaded" and "already downloaded" in str(stopped.value)
    state = hub.job_state(stopped.value.job_id)
    assert (state["status"], state["delivered"], state["archive_exists"]) == ("completed", True, True)
    assert leftovers(tmp_path) == []


def test_ctrl_c_during_a_plain_download_removes_the_partial_file(cellhub, hub: Hub, tmp_path):
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.wait(client.start_export(hub.project_id, {**OPTIONS, "include_images": True}))
    with hub.proxy() as proxy:
        slow = proxy.add(Rule("GET", "/download$", rate=20_000))
        interrupt_main_when(slow.matched, delay=0.5)
        with pytest.raises(KeyboardInterrupt) as stopped:
            cellhub.Client(proxy.url, token=hub.token).download(job.id, tmp_path / "out.zip")
    assert not isinstance(stopped.value, cellhub.ExportInterrupted)  # a download cancels nothing
    assert leftovers(tmp_path) == []
    assert hub.job_state(job.id)["status"] == "completed"


def test_ctrl_c_leaves_an_export_started_elsewhere_running(cellhub, hub: Hub, tmp_path):
    hub.hooks(hold_before_complete=True)
    page = hub.user.start(OPTIONS).json()  # the page of the same user started it
    with hub.proxy() as proxy:
        following = proxy.add(Rule("GET", "^/api/ws$"))  # no fault: tells when the client follows
        interrupt_main_when(following.matched, delay=0.5)
        with pytest.raises(cellhub.ExportInterrupted) as stopped:
            cellhub.Client(proxy.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "out.zip")
    assert (stopped.value.outcome, stopped.value.job_id) == ("left running", page["id"])
    assert hub.job_state(page["id"])["status"] == "running" and leftovers(tmp_path) == []
