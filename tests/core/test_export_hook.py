"""``use_advanced_export`` end to end over the fake world (C1-C8), one to three tabs."""
from __future__ import annotations

import json

import pytest

from app import persistence
from app.errors import field_errors
from app.export_hook import AUTO_DOWNLOAD_DELAY_MS, CANCEL_REQUEST_DELAY_MS, POLL_INTERVAL_MS
from app.export_hook.timing import CONFIRM_FIRST_MS
from app.ports import HttpResponse
from app.store import effect

from .fakes import HANG, LOST_RESPONSE, NETWORK_ERROR, World

PID = 1
KEY = persistence.storage_key(PID)


def started(world: World, tab) -> str:
    """Start an export in ``tab`` and deliver everything; returns the job id."""
    tab.start({"annotation_formats": ["coco"], "metrics_formats": ["csv"]})
    world.settle()
    assert tab.job is not None
    return tab.job.id


def open_tabs(world: World, n: int, **kw):
    tabs = [world.open_tab(PID, **kw) for _ in range(n)]
    world.settle()
    return tabs


def test_start_progress_complete_downloads_exactly_once(world):
    (a,) = open_tabs(world, 1)
    statuses = []
    effect(lambda: statuses.append(a.controller.export_status.value))
    assert a.controller.socket_connected.value
    jid = started(world, a)
    assert a.status == "queued" and a.controller.is_exporting.value
    assert json.loads(world.storage.data[KEY])["job"]["id"] == jid
    world.server.run(jid, progress=10.0)
    world.server.progress(jid, 55.0)
    world.settle()
    assert a.controller.export_progress.value == 55.0
    world.server.complete(jid)
    world.settle()
    assert a.status == "completed" and world.downloads == []
    world.advance(AUTO_DOWNLOAD_DELAY_MS + 1)
    world.advance(5_000)
    assert [d.job_id for d in world.downloads] == [jid]
    assert world.downloads[0].server_status == 200 and world.server.jobs[jid].delivered
    assert a.status == "downloaded" and a.controller.completed_job_id.value == jid
    assert statuses == ["idle", "starting", "queued", "running", "completed", "downloading", "delivering",
                        "downloaded"]
    assert world.violations() == []


def test_cancel_during_run(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    a.cancel()
    assert a.status == "cancelling"  # at once, before any delivery
    world.advance(1_000)
    assert world.server.jobs[jid].status == "cancelled"
    assert a.status == "cancelled" and b.status == "cancelled"
    assert KEY not in world.storage.data
    assert world.server.complete(jid) is None  # R3: the worker's CAS fails
    world.advance(10_000)
    assert world.downloads == [] and world.violations() == []


def test_cancel_click_order_is_local_state_marks_tabs_then_http(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.server.complete(jid)
    world.settle()
    assert a.status == "completed"  # auto-download timer pending
    posted_before = len(world.bus.posted)
    a.cancel()
    assert a.status == "cancelling"
    assert persistence.mark_key("cancelled", jid) in world.storage.data
    assert KEY not in world.storage.data
    assert world.bus.posted[posted_before][1]["kind"] == "cancel-requested"
    pending = world.sched.deliveries()
    channel = [s for s in pending if s.kind == "channel"]
    assert channel and not [s for s in pending if s.kind == "http-request"]
    # The request waits CANCEL_REQUEST_DELAY_MS (the other tabs repaint first), then leaves.
    due = world.sched.now_ms + CANCEL_REQUEST_DELAY_MS
    waiting = [t for t in world.sched.timers.values() if t.tab == a.id and t.due == due]
    assert len(waiting) == 1
    world.sched.fire(waiting[0])
    http = [s for s in world.sched.deliveries() if s.kind == "http-request" and "cancel" in s.label]
    assert http and channel[0].id < http[0].id
    assert [t.tab for t in world.sched.timers.values() if "auto_download" in t.label] == [b.id]
    world.advance(5_000)
    assert world.downloads == [] and a.status == "cancelled" and b.status == "cancelled"
    assert world.server.jobs[jid].status == "cancelled"  # R2: completed, not delivered -> cancelled
    assert world.violations() == []


def test_cancel_just_as_the_completion_arrives(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    world.server.complete(jid)  # the completion event is on its way to both tabs
    a.cancel()
    world.advance(5_000)
    assert world.downloads == []
    assert a.status == "cancelled" and b.status == "cancelled"
    assert world.violations() == []


def test_cancel_in_the_other_tab_before_its_message_arrives(world):
    """B clicks cancel; A already has the completion and its lock request in flight."""
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.server.complete(jid)
    world.settle()
    world.tick(AUTO_DOWNLOAD_DELAY_MS)  # both tabs now ask for the lock
    assert {a.status, b.status} == {"downloading"}
    b.cancel()  # the cancel mark is in storage before any lock decision
    world.advance(5_000)
    assert world.downloads == [] and world.violations() == []
    assert world.server.jobs[jid].status == "cancelled"


def test_three_tabs_one_download(world):
    a, b, c = open_tabs(world, 3)
    jid = started(world, b)
    assert a.status == "queued" and c.status == "queued"
    world.server.finish(jid)
    world.advance(5_000)
    assert len(world.downloads_of(jid)) == 1
    assert {t.status for t in (a, b, c)} == {"downloaded"}
    assert world.violations() == []


def test_three_tabs_without_broadcast_channel_nor_web_locks(world):
    a, b, c = open_tabs(world, 3, channel="storage", locks="storage")
    jid = started(world, a)
    world.server.finish(jid)
    world.advance(5_000)
    assert len(world.downloads_of(jid)) == 1
    assert {t.status for t in (a, b, c)} == {"downloaded"}
    assert world.violations() == []


def test_cancel_in_tab_b_of_a_job_started_in_tab_a(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    assert b.job.id == jid and b.controller.can_cancel.value
    b.cancel()
    world.settle()
    assert a.status in ("cancelling", "cancelled")
    world.advance(2_000)
    assert a.status == "cancelled" and b.status == "cancelled"
    assert world.server.jobs[jid].status == "cancelled" and world.downloads == []


def test_reload_offers_a_job_that_completed_while_closed(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    a.close()
    world.server.complete(jid)
    world.advance(60_000)
    a2 = world.reload(a)
    assert a2.status == "restoring" and not a2.controller.can_download.value
    world.advance(10_000)
    assert a2.status == "completed" and a2.controller.can_download.value
    assert world.downloads == []  # offered, not downloaded unasked (C8)
    a2.download(jid)
    world.advance(1_000)
    assert len(world.downloads_of(jid)) == 1 and a2.status == "downloaded"


def test_reload_while_running_follows_and_auto_downloads(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    a2 = world.reload(a)
    world.settle()
    assert a2.status == "running"
    world.server.complete(jid)
    world.advance(1_000)
    assert len(world.downloads_of(jid)) == 1


def test_reload_of_a_downloaded_job_shows_it_downloaded(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.finish(jid)
    world.advance(1_000)
    a2 = world.reload(a)
    world.advance(1_000)
    assert a2.status == "downloaded" and len(world.downloads) == 1


def test_corrupt_unknown_version_and_expired_storage_are_dropped(world):
    for raw, reason in [
        ("{not json", "corrupt"),
        (json.dumps({"v": 99, "saved_at": world.now, "project_id": PID, "job": {}}), "unknown version"),
        (json.dumps({"v": 1, "saved_at": world.now - 25 * 3600 * 1000, "project_id": PID,
                     "job": {"id": "x", "project_id": PID, "status": "running", "created_at": ""}}), "expired"),
        (json.dumps({"v": 1, "saved_at": world.now, "project_id": PID, "job": {"id": "x"}}), "corrupt"),
    ]:
        world.storage.data[KEY] = raw
        tab = world.open_tab(PID)
        world.settle()
        assert tab.status == "idle"
        assert KEY not in world.storage.data
        assert any(reason in w for w in tab.log.warnings), (reason, tab.log.warnings)
        tab.close()


def test_restore_of_a_job_the_server_forgot(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    a.close()
    del world.server.jobs[jid]
    a2 = world.reload(a)
    world.advance(1_000)
    assert a2.status == "idle" and KEY not in world.storage.data


def test_socket_down_polls_every_two_seconds_and_once_on_reconnect(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.drop_socket(a)
    world.settle()
    assert not a.controller.socket_connected.value
    gets = lambda: [r for r in world.server.requests if r[1] == "GET"]  # noqa: E731
    world.advance(POLL_INTERVAL_MS - 1)
    assert gets() == []
    world.advance(1)
    assert len(gets()) == 1
    world.server.run(jid, progress=30.0)
    world.advance(POLL_INTERVAL_MS)
    assert a.status == "running" and a.controller.export_progress.value == 30.0
    world.server.complete(jid)
    world.advance(POLL_INTERVAL_MS + AUTO_DOWNLOAD_DELAY_MS)
    assert len(world.downloads_of(jid)) == 1
    world.advance(CONFIRM_FIRST_MS)  # C9: one GET says the server recorded the download
    assert a.status == "downloaded"
    n = len(gets())
    world.advance(20_000)
    assert len(gets()) == n  # polling stops on a terminal status


def test_reconnect_polls_once(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.drop_socket(a)
    world.settle()
    world.server.finish(jid)  # missed: the socket is down
    world.unblock_socket(a)
    world.advance(600)  # reconnect after 500 ms, then one GET
    assert a.controller.socket_connected.value
    assert len([r for r in world.server.requests if r[1] == "GET"]) == 1
    assert a.status in ("completed", "downloading", "downloaded")
    world.advance(1_000)
    assert len(world.downloads) == 1


def test_poll_errors_back_off(world):
    (a,) = open_tabs(world, 1)
    started(world, a)
    world.drop_socket(a)
    world.server.inject("GET", r"/api/exports/.*", NETWORK_ERROR, times=3)
    world.settle()
    times = []
    for _ in range(4):
        before = len(world.sched.fired)
        while not any(s.kind == "http-request" for s in world.sched.fired[before:]):
            world.fire(world.sched.next_timer())
            world.settle()
        times.append(world.now)
    gaps = [round(b - a_) for a_, b in zip(times, times[1:])]
    assert gaps == [4000, 8000, 16000]


def test_visibility_triggers_a_query(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.drop_socket(a)
    world.settle()
    world.server.finish(jid)
    a.show()
    world.settle()
    assert a.status == "completed"


def test_cancel_network_errors_stay_cancelling_and_never_download(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    world.server.inject("POST", r"/api/exports/.*/cancel", NETWORK_ERROR, times=4)
    a.cancel()
    world.settle()
    assert a.status == "cancelling"
    world.server.complete(jid)
    world.advance(1_200)
    assert a.status == "cancelling" and b.status == "cancelling"
    world.advance(30_000)
    assert a.status == "cancelled" and b.status == "cancelled"
    assert world.downloads == [] and world.server.jobs[jid].status == "cancelled"


def test_cancel_that_reached_the_server_but_lost_its_answer(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.inject("POST", r"/api/exports/.*/cancel", LOST_RESPONSE)
    a.cancel()
    world.advance(10_000)
    assert a.status == "cancelled" and world.server.jobs[jid].status == "cancelled"


def test_cancel_after_another_device_downloaded_shows_the_truth(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.finish(jid)
    world.settle()
    assert a.status == "completed"
    world.server.download(jid)  # delivered elsewhere, no event
    a.cancel()
    world.advance(1_000)
    assert a.status == "downloaded" and a.controller.notice.value == "already downloaded"
    assert world.downloads == []


def test_a_second_tab_starting_attaches_to_the_active_job(world):
    a, b = open_tabs(world, 2)
    world.bus.subscribers.pop(b.id)  # B hears nothing from A
    world.storage.subscribers.pop(b.id)
    world.drop_socket(b)
    world.settle()
    jid = started(world, a)
    b.start()
    world.settle()
    assert b.job.id == jid and "attached" in b.controller.notice.value
    assert len(world.server.jobs) == 1


def test_a_lost_start_answer_is_retried_and_attaches(world):
    (a,) = open_tabs(world, 1)
    world.server.inject("POST", r"/api/projects/\d+/exports", LOST_RESPONSE)
    a.start()
    world.advance(2_000)
    assert a.status == "queued" and len(world.server.jobs) == 1
    assert a.job.id == next(iter(world.server.jobs))


def test_invalid_options_are_not_sent(world):
    (a,) = open_tabs(world, 1)
    a.start({"annotation_formats": ["png"]})
    world.settle()
    assert a.status == "idle" and "annotation_formats" in a.controller.error_message.value
    assert world.server.requests == []


def test_server_validation_error_is_shown(world):
    (a,) = open_tabs(world, 1)
    world.server.inject("POST", r"/api/projects/\d+/exports",
                        HttpResponse(422, field_errors([("pixel_size_um", "too large")])))
    a.start()
    world.settle()
    assert a.status == "failed" and "pixel_size_um: too large" in a.controller.error_message.value


@pytest.mark.parametrize("status, detail", [
    (429, "You already have 3 exports queued or running; the limit is 3 per user."),
    (507, "Your finished exports keep 2048.0 MiB of archives on the server; your quota is 2048.0 MiB."),
])
def test_a_start_refused_by_a_fair_use_limit_is_shown_once_and_not_retried(world, status, detail):
    (a,) = open_tabs(world, 1)
    world.server.inject("POST", r"/api/projects/\d+/exports", HttpResponse(status, {"detail": detail}))
    a.start()
    world.settle()
    world.advance(60_000)
    assert a.status == "failed" and detail in a.controller.error_message.value
    assert not [r for r in world.server.requests if r[1] == "POST"]  # an injected answer is not recorded: no retry


def test_a_failed_job(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.run(jid)
    world.server.fail(jid, "out of memory")
    world.settle()
    assert a.status == "failed" and a.controller.error_message.value == "out of memory"
    assert b.status == "failed" and KEY not in world.storage.data


def test_dismiss_is_shared(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.server.finish(jid)
    world.advance(1_000)
    a.dismiss()
    world.settle()
    assert a.status == "idle" and b.status == "idle" and KEY not in world.storage.data
    a.start()
    world.settle()
    assert b.job.id == a.job.id != jid


def test_an_idle_tab_follows_a_job_it_hears_of_only_from_the_socket(world):
    a, b = open_tabs(world, 2)
    world.bus.subscribers.pop(b.id)
    world.storage.subscribers.pop(b.id)
    jid = started(world, a)
    world.server.run(jid)
    world.settle()
    assert b.status == "running" and b.job.id == jid
    world.server.complete(jid)
    world.advance(5_000)
    assert len(world.downloads) == 1 and world.violations() == []


def test_stale_and_malformed_socket_events_are_dropped(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.run(jid, progress=40.0)
    world.settle()
    conn = a.ports.socket.current
    conn.send({"type": "export.completed", "job_id": jid, "project_id": PID, "seq": 1, "status": "completed",
               "progress": 100, "ts": 0})
    conn.send({"type": "export.progress", "job_id": jid})
    conn.send({"type": "hello"})
    world.settle()
    assert a.status == "running" and a.controller.export_progress.value == 40.0
    assert any("malformed socket event" in w for w in a.log.warnings)


def test_malformed_cross_tab_messages_are_dropped(world):
    a, b = open_tabs(world, 2)
    b.ports.channel.post({"v": 1, "kind": "completed"})
    b.ports.channel.post("nonsense")
    world.settle()
    assert a.status == "idle" and len(a.log.warnings) == 2


def test_closing_a_tab_stops_its_work(world):
    a, b = open_tabs(world, 2)
    jid = started(world, a)
    world.drop_socket(a)
    world.settle()
    a.close()
    world.advance(10_000)
    assert not [t for t in world.sched.timers.values() if t.tab == a.id]
    assert not [r for r in world.server.requests if r[0] == a.id and r[1] == "GET"]
    world.server.finish(jid)
    world.advance(5_000)
    assert [d.tab for d in world.downloads] == [b.id]


def test_a_hanging_cancel_request_keeps_cancelling(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.inject("POST", r"/api/exports/.*/cancel", HANG)
    a.cancel()
    world.server.finish(jid)
    world.advance(60_000)
    assert a.status == "cancelling" and world.downloads == []


def test_a_cancel_that_beats_the_download_request_to_the_server_wins(world):
    """R2: A handed the download to the browser; B's cancel reaches the server first. A never
    says "Downloaded" (C9: the server never recorded the download)."""
    a, b = open_tabs(world, 2)
    shown = []
    effect(lambda: shown.append(a.controller.export_status.value))
    jid = started(world, a)
    world.server.finish(jid)
    world.settle()
    world.tick(AUTO_DOWNLOAD_DELAY_MS)
    while not world.downloads:  # deliver until a download is handed out, nothing more
        world.fire(world.sched.deliveries()[0])
    b.cancel()
    world.tick(CANCEL_REQUEST_DELAY_MS)  # B's cancel request leaves, nothing else is delivered
    cancel_leg = [s for s in world.sched.deliveries() if s.kind == "http-request" and "cancel" in s.label]
    world.fire(cancel_leg[0])
    world.advance(5_000)
    assert world.downloads[0].server_status == 410
    assert a.status == "cancelled" and b.status == "cancelled"
    assert "delivering" in shown and "downloaded" not in shown
    assert world.violations() == []


def test_server_errors_on_cancel_are_retried(world):
    (a,) = open_tabs(world, 1)
    jid = started(world, a)
    world.server.inject("POST", r"/api/exports/.*/cancel", HttpResponse(503, {"detail": "busy"}), times=2)
    a.cancel()
    world.advance(600)
    assert a.status == "cancelling"
    world.advance(2_000)
    assert a.status == "cancelled" and world.server.jobs[jid].status == "cancelled"


def test_a_late_storage_event_is_read_as_the_value_now(world):
    """B hears of A's export only through storage events that arrive after it ended."""
    a, b = open_tabs(world, 2)
    world.bus.subscribers.pop(b.id)
    world.drop_socket(b)
    seen = []
    effect(lambda: seen.append(b.controller.export_status.value))
    a.start()
    while a.job is None:  # deliver to A only: B's storage events wait
        world.fire(next(s for s in world.sched.deliveries() if s.tab != b.id))
    a.cancel()
    world.advance(5_000)
    assert a.status == "cancelled"
    assert seen == ["idle"] and not [r for r in world.server.requests if r[0] == b.id]
