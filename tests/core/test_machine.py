"""The export state machine table (``app.machine``): rows, guards, actions, activities."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from app.machine import (
    ACTIVITIES, MAX_START_ATTEMPTS, RULES, SAME, STATES, AutoDownloadDue, Cancel, CancelAnswered, ClearMark,
    ClearPersist, DeliveryUnconfirmed, ClearStartCancel, Dismiss, Download, ExportState, FetchFailed, JobUpdate, LockResult,
    Marks, MarkStartCancel, Persist,
    Post, Remote, Restore, Start, StartAccepted, StartDownload, StartFailed, StartRejected, Update,
    WriteMark, activities, describe_rules, initial_state, transition, view,
)
from app.export_hook import retry_delay_ms
from app.machine.changes import ended_message, state_for_job
from app.machine.guards import DELIVERY_ASKS, cancel_marked, for_project, newer, status_is
from app.machine.state import State
from app.models import ExportJob, ExportOptions

PID = 7
BROWSER = "b1"
"""The browser of the tab under test; ``job()`` is started in it unless told otherwise."""


def job(status="queued", seq=1, jid="j1", start_token=f"{BROWSER}.tab.1", **kw) -> ExportJob:
    return ExportJob(id=jid, project_id=PID, status=status, seq=seq, created_at="2026-01-01T00:00:00+00:00",
                     start_token=start_token, **kw)


def upd(status, seq, jid="j1", source="socket", progress=None, marks=Marks(), start_token=f"{BROWSER}.tab.1",
        **kw) -> Update:
    return Update(JobUpdate(jid, PID, seq, status, progress, start_token=start_token, **kw), source, marks)


def run(state, *events):
    actions = []
    for ev in events:
        state, acts = transition(state, ev)
        actions += acts
    return state, actions


def running_state(seq=2) -> ExportState:
    """This tab started the job (its start token is the job's) and sees it running."""
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions(), f"{BROWSER}.tab.1"), StartAccepted(job()),
               upd("running", seq))
    assert s.status == "running"
    return s


def completed_state() -> ExportState:
    s, _ = run(running_state(), upd("completed", 3))
    assert s.status == "completed" and s.auto_download
    return s


def kinds(actions, cls=Post):
    return [a.kind for a in actions if isinstance(a, cls)]


# ------------------------------------------------------------------- the table itself


def test_every_row_names_known_states():
    for rule in RULES:
        assert rule.when <= set(STATES), rule
        if isinstance(rule.to, str):
            assert rule.to in set(STATES) | {SAME}, rule
    for row in ACTIVITIES:
        assert row.state in STATES


def test_describe_rules_lists_every_row():
    lines = describe_rules().splitlines()
    assert len(lines) == len(RULES)
    assert any(line.startswith("Restore") and "-> restoring; -" in line for line in lines)
    assert any("-> <state of the re-queried job (C8)>; clear if cancelling/cancelled/failed" in line for line in lines)


def test_states_are_a_str_enum_equal_to_their_names():
    assert [str(s) for s in STATES][:3] == ["idle", "restoring", "starting"]
    assert State.RUNNING == "running" and "running" in {State.RUNNING} and State("failed") is State.FAILED


def test_a_conjunction_keeps_its_parts():
    guard = for_project & newer & status_is("completed") & cancel_marked
    assert guard.names == ("for_project", "newer", "status completed", "cancel_marked")
    assert (~cancel_marked).names == ("~cancel_marked",)


def test_state_for_job_is_the_one_mapping_of_a_job_to_a_state():
    rows = [  # status, delivered, marks, state
        ("queued", False, Marks(), State.QUEUED),
        ("running", False, Marks(), State.RUNNING),
        ("running", False, Marks(cancelled=True), State.CANCELLING),
        ("completed", False, Marks(), State.COMPLETED),
        ("completed", True, Marks(), State.COMPLETED),  # C10: another browser's download; offered here
        ("completed", False, Marks(downloaded=True), State.DOWNLOADED),
        ("completed", True, Marks(claimed=True), State.DOWNLOADED),  # C9: the server recorded our download
        ("completed", False, Marks(claimed=True), State.DELIVERING),  # C9: its word is still awaited
        ("completed", False, Marks(undelivered=True), State.UNDELIVERED),
        ("completed", False, Marks(cancelled=True), State.CANCELLING),
        ("completed", True, Marks(claimed=True, cancelled=True), State.DOWNLOADED),  # C2: delivery is the truth
        ("completed", True, Marks(cancelled=True), State.CANCELLING),  # C2: the server will answer 409
        ("cancelled", False, Marks(cancelled=True), State.CANCELLED),
        ("failed", False, Marks(), State.FAILED),
        ("expired", False, Marks(), State.FAILED),
    ]
    for status, delivered, marks, expected in rows:
        assert state_for_job(status, delivered, marks) is expected, (status, delivered, marks)


def test_ended_message():
    assert ended_message("failed", "disk full") == "disk full"
    assert ended_message("failed", "") == "the export failed"
    assert ended_message("expired", "") == "the export expired"


def test_an_event_no_row_accepts_returns_the_same_state():
    s = initial_state(PID, BROWSER)
    new, actions = transition(s, Cancel())
    assert new is s and actions == []


def test_transition_is_pure():
    s = running_state()
    ev = upd("completed", 3)
    assert transition(s, ev) == transition(s, ev)
    assert s.status == "running"


def test_retry_delays():
    assert [retry_delay_ms(n) for n in range(7)] == [0, 500, 1000, 2000, 4000, 8000, 10000]


# ---------------------------------------------------------------------------- start


def test_start_then_accepted_persists_and_tells_the_other_tabs():
    s, acts = run(initial_state(PID, BROWSER), Start(ExportOptions()))
    assert s.status == "starting" and acts == [] and activities(s) == {"start_request"}
    s, acts = transition(s, StartAccepted(job()))
    assert s.status == "queued" and s.live
    assert acts == [Persist(job(), replace_other=True), Post("started", job())]


def test_start_is_ignored_while_an_export_is_in_flight():
    s = running_state()
    assert transition(s, Start(ExportOptions()))[0] is s


def test_a_409_attaches_with_a_notice():
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions()), StartAccepted(job("running", 4), conflict=True))
    assert s.status == "running" and "attached" in (s.notice or "")


def test_start_retries_then_fails():
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions()))
    for attempt in range(1, MAX_START_ATTEMPTS):
        s, _ = transition(s, StartFailed("net", retryable=True))
        assert s.status == "starting" and s.attempt == attempt
    s, _ = transition(s, StartFailed("net", retryable=True))
    assert s.status == "failed" and "net" in s.error


def test_a_client_error_fails_at_once_and_rejected_options_only_set_the_error():
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions()), StartFailed("image_ids: bad", retryable=False))
    assert s.status == "failed" and "image_ids" in s.error
    s2, acts = transition(initial_state(PID, BROWSER), StartRejected("bad options"))
    assert s2.status == "idle" and s2.error == "bad options" and acts == []


def test_news_racing_the_202_is_applied_after_it():
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions()), upd("running", 2, progress=30.0),
               upd("completed", 3))
    assert s.status == "starting" and s.early.seq == 3
    s, acts = transition(s, StartAccepted(job()))
    assert s.status == "completed" and s.auto_download and s.early is None


# --------------------------------------------------------------------------- cancel


def test_cancel_is_local_first_and_in_order():
    s, acts = transition(running_state(), Cancel())
    assert s.status == "cancelling" and s.attempt == 0
    assert acts == [WriteMark("cancelled", "j1"), ClearPersist("j1"), Post("cancel-requested", s.job)]
    assert activities(s) == {"cancel_request", "poll"}


def test_cancel_of_a_completed_job_stops_the_auto_download():
    c = completed_state()
    assert "auto_download" in activities(c)
    s, _ = transition(c, Cancel())
    assert s.status == "cancelling" and "auto_download" not in activities(s)
    assert transition(s, AutoDownloadDue("j1"))[0] is s


def test_completion_is_not_applied_while_cancelling():
    s, _ = transition(running_state(), Cancel())
    for ev in (upd("completed", 3), upd("completed", 3, source="poll"), Remote("download-claimed", "j1", PID)):
        assert transition(s, ev)[0] is s


def test_cancel_answers():
    s, _ = transition(running_state(), Cancel())
    ok, acts = transition(s, CancelAnswered("ok", job("cancelled", 3)))
    assert ok.status == "cancelled" and kinds(acts) == ["cancelled"]
    dl, _ = transition(s, CancelAnswered("downloaded", job("completed", 3, delivered=True), "already downloaded"))
    assert dl.status == "downloaded" and dl.notice == "already downloaded" and not dl.handed_out_here
    retry, _ = transition(s, CancelAnswered("retry"))
    assert retry.status == "cancelling" and retry.attempt == 1
    gone, _ = transition(s, CancelAnswered("gone"))
    assert gone.status == "cancelled"
    refused, _ = transition(s, CancelAnswered("refused", message="forbidden"))
    assert refused.status == "failed" and "forbidden" in refused.error


def test_cancel_while_starting_waits_for_the_job_id():
    s, acts = run(initial_state(PID, BROWSER), Start(ExportOptions(), "t1"), StartFailed("net", True), Cancel())
    assert s.status == "cancelling" and s.job is None and s.attempt == 1 and s.start_token == "t1"
    assert acts == [MarkStartCancel("t1")]
    assert activities(s) == {"start_request"}  # the same POST keeps going
    s2, acts = transition(s, StartAccepted(job()))
    assert s2.status == "cancelling" and s2.job.id == "j1"
    assert acts == [WriteMark("cancelled", "j1"), ClearStartCancel("t1"), Post("cancel-requested", job())]
    assert "cancel_request" in activities(s2)
    s3, acts = transition(s, StartFailed("net", True))
    assert s3.status == "cancelling" and s3.attempt == 2 and acts == []  # the POST may have landed
    s4, acts = transition(s, StartFailed("bad", False))
    assert s4.status == "cancelled" and acts == [ClearStartCancel("t1")]


def test_cancelling_before_the_job_id_never_gives_up_on_a_failing_network():
    """While starting, a failing POST gives up after MAX_START_ATTEMPTS; once cancel was
    clicked it never does: only the answer names the job that must be cancelled (F6)."""
    s, _ = run(initial_state(PID, BROWSER), Start(ExportOptions(), "t1"), Cancel())
    for _ in range(MAX_START_ATTEMPTS * 3):
        s, acts = transition(s, StartFailed("timeout", True))
        assert s.status == "cancelling" and acts == []
    assert activities(s) == {"start_request"}
    gave_up, _ = run(initial_state(PID, BROWSER), Start(ExportOptions(), "t1"),
                     *[StartFailed("timeout", True)] * MAX_START_ATTEMPTS)
    assert gave_up.status == "failed"


def test_a_cancel_mark_stops_a_completion_and_a_download():
    marked = Marks(cancelled=True)
    s, _ = transition(running_state(), upd("completed", 3, marks=marked))
    assert s.status == "cancelling"
    c = completed_state()
    assert transition(c, AutoDownloadDue("j1", marked))[0].status == "cancelling"
    d, _ = transition(c, AutoDownloadDue("j1"))
    s, acts = transition(d, LockResult("j1", True, marked))
    assert s.status == "cancelling" and not any(isinstance(a, StartDownload) for a in acts)


def test_cancel_requested_by_another_tab():
    for s0 in (running_state(), completed_state()):
        s, acts = transition(s0, Remote("cancel-requested", "j1", PID))
        assert s.status == "cancelling" and kinds(acts) == []
    other = transition(running_state(), Remote("cancel-requested", "other", PID))
    assert other[0].status == "running"


# ------------------------------------------------------------------------ job news


def test_only_newer_news_is_applied():
    s = running_state(seq=5)
    assert transition(s, upd("running", 5, progress=90.0))[0] is s
    assert transition(s, upd("completed", 4))[0] is s
    s2, _ = transition(s, upd("running", 6, progress=40.0))
    assert s2.job.progress == 40.0 and s2.job.seq == 6


def test_news_of_another_project_is_ignored():
    s = running_state()
    ev = Update(JobUpdate("j1", PID + 1, 9, "completed"), "socket")
    assert transition(s, ev)[0] is s


def test_channel_news_counts_only_when_the_status_moves():
    s = running_state(seq=2)
    assert transition(s, upd("running", 3, source="channel"))[0] is s
    s2, acts = transition(s, upd("completed", 3, source="channel"))
    assert s2.status == "completed" and kinds(acts) == []  # relayed news is not relayed again


def test_server_news_is_relayed_on_status_moves():
    s, acts = transition(running_state(), upd("completed", 3))
    assert kinds(acts) == ["completed"]
    s, acts = transition(running_state(), upd("running", 3, progress=10.0))
    assert kinds(acts) == []


def test_failure_clears_and_shows_the_message():
    s, acts = transition(running_state(), upd("failed", 3, message="disk full"))
    assert s.status == "failed" and s.error == "disk full" and ClearPersist("j1") in acts


def test_delivered_news_is_this_browsers_download_only_with_its_marks():
    """C9/C10: the server's delivered flag alone may be another browser's download: this
    browser still gets its file; with this browser's claim (or its downloaded mark) it is
    this browser's download, recorded."""
    news = lambda marks: Update(JobUpdate.from_job(job("completed", 3, delivered=True)), "poll", marks)  # noqa: E731
    other, acts = transition(completed_state(), news(Marks()))
    assert other.status == "completed" and other.auto_download and acts == []
    claimed, acts = transition(completed_state(), news(Marks(claimed=True)))
    assert claimed.status == "downloaded" and not claimed.handed_out_here
    assert acts == [WriteMark("downloaded", "j1"), Post("downloaded", claimed.job), Persist(claimed.job)]
    marked, acts = transition(completed_state(), news(Marks(downloaded=True)))
    assert marked.status == "downloaded" and acts == []


def test_an_idle_tab_follows_a_job_it_did_not_start():
    s, acts = transition(initial_state(PID, BROWSER), upd("running", 4, jid="j9", progress=20.0))
    # The tab whose start made it keeps the record (one writer, issue 18): nothing to write here.
    assert s.status == "running" and s.job.id == "j9" and s.live and acts == []
    done = transition(s, upd("completed", 5, jid="j9"))[0]
    assert done.auto_download
    foreign, acts = transition(initial_state(PID, BROWSER), upd("running", 4, jid="j8", start_token="b2.t.1"))
    assert acts == [Persist(foreign.job)]  # no tab of this browser started it: its followers keep it


def test_only_the_starting_tab_writes_the_record_as_the_job_moves_on():
    """Issue 18: every tab rewrote the record on every event; now the tab whose start made
    the job writes its status moves (never its progress), the others nothing."""
    mine = running_state(seq=2)
    assert transition(mine, upd("running", 3, progress=50.0))[1] == []  # progress: no write
    done, acts = transition(mine, upd("completed", 4))
    assert Persist(done.job) in acts
    follower = replace(mine, start_token=None)  # the same job in a tab that did not start it
    assert not any(isinstance(a, Persist) for a in transition(follower, upd("completed", 4))[1])


def test_a_job_another_browser_started_is_followed_and_offered_never_downloaded_unasked():
    """C10: the start token names the browser that asked (``app.identity``)."""
    for token in ("b2.tab.1", None):
        s, _ = transition(initial_state(PID, BROWSER), upd("running", 4, jid="j9", start_token=token))
        assert s.status == "running" and s.live
        done = transition(s, upd("completed", 5, jid="j9", start_token=token))[0]
        assert done.status == "completed" and not done.auto_download and view(done).can_download
        assert "auto_download" not in activities(done)


def test_a_dismissed_job_is_not_followed_again():
    s, _ = run(completed_state(), Remote("downloaded", "j1", PID), Dismiss())
    assert s.status == "idle" and "j1" in s.dismissed
    assert transition(s, upd("running", 9))[0] is s


def test_terminal_news_of_an_unknown_job_is_ignored():
    s = initial_state(PID, BROWSER)
    assert transition(s, upd("completed", 3, jid="old"))[0] is s


# ------------------------------------------------------------------------- restore


def test_restore_requeries_and_never_auto_downloads_a_job_that_completed_meanwhile():
    s, _ = transition(initial_state(PID, BROWSER), Restore(job("running", 4)))
    assert s.status == "restoring" and activities(s) == {"fetch_job"} and not view(s).can_download
    done, acts = transition(s, Update(JobUpdate.from_job(job("completed", 6)), "fetch"))
    assert done.status == "completed" and not done.auto_download and view(done).can_download
    assert "auto_download" not in activities(done)


def test_restore_outcomes():
    s, _ = transition(initial_state(PID, BROWSER), Restore(job("running", 4)))
    fetched = lambda j, marks=Marks(): Update(JobUpdate.from_job(j), "fetch", marks)  # noqa: E731
    assert transition(s, fetched(job("running", 5)))[0].live
    assert transition(s, fetched(job("completed", 6, delivered=True), Marks(claimed=True)))[0].status == "downloaded"
    assert transition(s, fetched(job("completed", 6), Marks(downloaded=True)))[0].status == "downloaded"
    offered = transition(s, fetched(job("completed", 6, delivered=True)))[0]  # C10: another browser's download
    assert offered.status == "completed" and view(offered).can_download
    assert transition(s, fetched(job("completed", 6), Marks(claimed=True)))[0].status == "delivering"
    again = transition(s, fetched(job("completed", 6), Marks(undelivered=True)))[0]  # C9, after a reload
    assert again.status == "undelivered" and view(again).can_download
    assert transition(s, fetched(job("running", 6), Marks(cancelled=True)))[0].status == "cancelling"
    assert transition(s, fetched(job("cancelled", 6)))[0].status == "cancelled"
    assert transition(s, fetched(job("expired", 6)))[0].status == "failed"
    gone, acts = transition(s, FetchFailed("j1", "gone"))
    assert gone.status == "idle" and ClearPersist("j1") in acts
    assert transition(s, FetchFailed("j1", "retry"))[0].attempt == 1


def test_live_news_during_the_requery_is_applied_after_it():
    s, _ = run(initial_state(PID, BROWSER), Restore(job("running", 4)), upd("completed", 6))
    assert s.status == "restoring"
    s, _ = transition(s, Update(JobUpdate.from_job(job("running", 5)), "fetch"))
    assert s.status == "completed" and s.auto_download


# ------------------------------------------------------------------------ download


def test_download_under_the_lock_claims_before_it_downloads_and_waits_for_the_servers_word():
    d, _ = transition(completed_state(), AutoDownloadDue("j1"))
    assert d.status == "downloading" and activities(d) == {"download_lock"}
    s, acts = transition(d, LockResult("j1", True))
    assert s.status == "delivering" and s.handed_out_here and not view(s).can_download
    assert acts == [ClearMark("undelivered", "j1"), WriteMark("claimed", "j1"), Post("download-claimed", s.job),
                    StartDownload(s.job)]
    assert activities(s) == {"download_lock", "confirm_delivery"}  # C9: the server is asked
    done, acts = transition(s, upd("completed", 3, delivered=True, marks=Marks(claimed=True), source="poll"))
    assert done.status == "downloaded" and done.notice is None and done.job.delivered
    assert acts == [WriteMark("downloaded", "j1"), Post("downloaded", done.job), Persist(done.job)]
    assert "download_lock" in activities(done)  # held while this tab shows its download
    for ask in range(1, DELIVERY_ASKS):  # C9: asked again, until the last ask
        s, acts = transition(s, DeliveryUnconfirmed("j1", Marks(claimed=True)))
        assert s.status == "delivering" and s.attempt == ask and acts == []
    failed, acts = transition(s, DeliveryUnconfirmed("j1", Marks(claimed=True)))
    assert failed.status == "undelivered" and view(failed).can_download and not failed.handed_out_here
    assert acts == [ClearMark("claimed", "j1"), WriteMark("undelivered", "j1"), Post("download-failed", s.job)]
    assert activities(failed) == frozenset()  # the lock is released: a Download click asks again
    again, _ = transition(failed, Download("j1", Marks(undelivered=True)))
    assert again.status == "downloading"


def test_download_lock_outcomes():
    d, _ = transition(completed_state(), AutoDownloadDue("j1"))
    denied, acts = transition(d, LockResult("j1", False))
    # issue 18: straight to what the winner's news will say, never a Download button meanwhile
    assert denied.status == "delivering" and not view(denied).can_download and acts == []
    assert activities(denied) == {"confirm_delivery"}
    marked, acts = transition(d, LockResult("j1", True, Marks(downloaded=True)))
    assert marked.status == "downloaded" and acts == [] and "download_lock" not in activities(marked)
    claimed, acts = transition(d, LockResult("j1", True, Marks(claimed=True)))
    assert claimed.status == "delivering" and acts == [] and not claimed.handed_out_here
    # A tab that follows another tab's download asks the server once, then says so.
    settled, acts = transition(claimed, DeliveryUnconfirmed("j1", Marks(claimed=True)))
    assert settled.status == "undelivered" and acts[1] == WriteMark("undelivered", "j1")


def test_offered_download_needs_a_click():
    s, _ = run(initial_state(PID, BROWSER), Restore(job("running", 4)),
               Update(JobUpdate.from_job(job("completed", 6)), "fetch"))
    assert transition(s, AutoDownloadDue("j1"))[0] is s
    assert transition(s, Download("other"))[0] is s
    assert transition(s, Download("j1"))[0].status == "downloading"


def test_another_tabs_download_ends_ours():
    for s0 in (completed_state(), transition(completed_state(), AutoDownloadDue("j1"))[0]):
        s, _ = transition(s0, Remote("downloaded", "j1", PID))
        assert s.status == "downloaded" and s.notice == "downloaded in another tab"


def test_dismiss_clears_and_is_shared():
    s, acts = run(completed_state(), Remote("downloaded", "j1", PID), Dismiss())
    assert s.status == "idle" and s.job is None and kinds(acts) == ["dismissed"]
    other, _ = transition(replace(completed_state(), auto_download=False), Remote("dismissed", "j1", PID))
    assert other.status == "idle"
    assert transition(running_state(), Dismiss())[0].status == "running"


def test_view_values():
    assert view(initial_state(PID, BROWSER)).export_status == "idle"
    v = view(running_state())
    assert v.is_exporting and v.can_cancel and v.completed_job_id is None
    c = view(completed_state())
    assert c.export_progress == 100.0 and c.completed_job_id == "j1" and not c.can_download


def test_the_view_says_what_the_page_shows_in_each_state():
    shown = {  # state: (busy, shows_progress, in_flight, history_phase)
        State.IDLE: (False, False, False, None),
        State.RESTORING: (True, True, True, None),
        State.STARTING: (True, True, True, None),
        State.QUEUED: (False, True, True, "active"),
        State.RUNNING: (False, True, True, "active"),
        State.CANCELLING: (True, True, True, None),
        State.CANCELLED: (False, True, False, "cancelled"),
        State.COMPLETED: (False, True, False, "completed"),
        State.DOWNLOADING: (True, True, False, None),
        State.DELIVERING: (True, True, False, None),
        State.DOWNLOADED: (False, True, False, "downloaded"),
        State.UNDELIVERED: (False, True, False, "completed"),
        State.FAILED: (False, True, False, "failed"),
    }
    assert set(shown) == set(STATES)
    for status, expected in shown.items():
        v = view(replace(initial_state(PID, BROWSER), status=status))
        assert (v.busy, v.shows_progress, v.in_flight, v.history_phase) == expected, status


# ------------------------------------------------------------- a property over traces

_EVENTS = st.sampled_from([
    Start(ExportOptions()), StartAccepted(job()), StartAccepted(job("running", 2), conflict=True),
    StartFailed("net", True), StartFailed("bad", False), Cancel(), Dismiss(),
    CancelAnswered("ok"), CancelAnswered("retry"), CancelAnswered("downloaded"),
    upd("running", 2, progress=10.0), upd("running", 3, progress=50.0), upd("completed", 4),
    upd("completed", 4, source="channel"), upd("cancelled", 5), upd("failed", 5),
    upd("completed", 4, marks=Marks(cancelled=True)),
    AutoDownloadDue("j1"), Download("j1"), LockResult("j1", True), LockResult("j1", False),
    LockResult("j1", True, Marks(cancelled=True)), LockResult("j1", True, Marks(downloaded=True)),
    Remote("cancel-requested", "j1", PID), Remote("downloaded", "j1", PID),
    Restore(job("running", 2)), Update(JobUpdate.from_job(job("completed", 4)), "fetch"),
    upd("completed", 4, delivered=True, marks=Marks(claimed=True), source="poll"), DeliveryUnconfirmed("j1"),
    Download("j1", Marks(undelivered=True)), Remote("download-claimed", "j1", PID), Remote("download-failed", "j1", PID),
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_EVENTS, max_size=25))
def test_no_download_after_a_cancel_and_only_from_a_granted_lock(events):
    s = initial_state(PID, BROWSER)
    cancelled_jobs: set[str] = set()
    downloads = 0
    for ev in events:
        before = s
        s, acts = transition(s, ev)
        if s.status == "cancelling" and s.job is not None:
            cancelled_jobs.add(s.job.id)
        for a in acts:
            if isinstance(a, StartDownload):
                downloads += 1
                assert before.status == "downloading" and isinstance(ev, LockResult) and ev.granted
                assert not ev.marks.cancelled and not ev.marks.downloaded and not ev.marks.claimed
                assert a.job.id not in cancelled_jobs
                assert acts.index(WriteMark("claimed", a.job.id)) < acts.index(a)
        assert s.status in STATES
    assert downloads <= 1  # one job id in these traces: one download at most


def test_relayed_news_of_another_job_is_verified_before_it_is_followed():
    for source in ("channel", "storage"):
        s, acts = transition(initial_state(PID, BROWSER), upd("running", 4, jid="j9", source=source))
        assert s.status == "restoring" and s.adopting and activities(s) == {"fetch_job"} and acts == []
        fetched = lambda j: Update(JobUpdate.from_job(j), "fetch")  # noqa: E731
        live, _ = transition(s, fetched(job("running", 5, jid="j9")))
        assert live.status == "running" and live.live and not live.adopting
        stale, acts = transition(s, fetched(job("failed", 6, jid="j9")))
        assert stale.status == "idle" and stale.job is None and acts == []
        gone, acts = transition(s, FetchFailed("j9", "gone"))
        assert gone.status == "idle" and acts == []
