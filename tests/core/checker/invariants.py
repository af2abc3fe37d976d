"""The checker's invariants, as functions of a ``Sim`` returning violation strings.

Checked after every move (``step_violations``):

- I1, I2, I9, I10, I12 and E0 are the world's safety invariants, written once in
  ``tests/core/fakes/safety.py`` (``World.violations`` checks the same): no download after a
  cancel click for the job; a browser downloads a job once (again only after showing the
  previous download did not complete), none the server refused without a cancel; no
  browser downloads unasked a job another browser started; a tab shows a job downloaded
  only if the server recorded the delivery; a record is never rewritten with nothing new;
  nothing reached the store's error handler.
- I5 a browser's persisted record of the project never holds a job after a tab of that
  browser settled its cancel or failure (showed it ``cancelled`` or ``failed``).
- I6 ``is_downloading`` implies the tab's last known status of its job is ``completed``
  and it is asking for or holding the download lock ``export-download:<job>`` right now;
  ``is_exporting`` implies the tab's last known status of its job is ``queued``/``running``
  (``queued``/``running`` states), or a request that will settle it is alive: the start
  POST (``starting``, or ``cancelling`` before the job id is known) or the cancel POST of
  the job (``cancelling``), either in flight or waiting for its retry timer.
- I7 a tab that got a cancel click for a job never shows that job as ``completed_job_id``
  again, unless the server recorded it as delivered (C2: 409 "already downloaded").
- I8 no orphan work: a tab's pending auto-download timer, its live lock request or lock,
  and its live start/cancel POSTs all belong to its current state (completed with
  auto-download on; downloading, or delivering/downloaded here; starting; cancelling that
  job).
- I11 a tab that asked for the download lock never shows the job offered again
  (``completed``, a Download button) at the answer: a lost lock means another tab is
  handing the file out, and the tab goes straight to following that (issue 18).

Checked at quiescence, after the fair run of ``search.finish`` (``final_violations``):

- I3 a job the server completed, for which no cancel was clicked, and which an open tab of
  the browser that started it followed live (its current mount saw it queued/running), was
  downloaded in that browser (a download of it reached the server; I2 says: once), or a
  download of it there never reached the server and the open tabs there that show it offer
  it again (``undelivered``).
- I4 no open tab shows ``is_exporting``/``is_downloading`` for a job the server holds as
  terminal (or for no job at all), and a tab showing such a job shows its outcome
  (completed -> completed/downloaded/undelivered, cancelled -> cancelled, failed/expired ->
  failed).
- L0 the world reached quiescence (no pending delivery, no timer) within the bound.
"""
from __future__ import annotations

from typing import Optional

from app.crosstab import LOCK_PREFIX
from app.routes import cancel_path, start_path

from app.identity import token_browser

from ..fakes import Tab
from ..fakes.safety import display_violations, download_violations, storage_violations, store_error_violations
from .sim import PID, Sim, cancel_clicks, record_job_id, timer_purpose

STEP_CODES = ("I1", "I2", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12", "E0")
FINAL_CODES = ("I3", "I4", "L0")
TERMINAL = frozenset({"completed", "cancelled", "failed", "expired"})
AGREES = {"cancelled": {"cancelled"}, "failed": {"failed"}, "expired": {"failed"},
          "completed": {"completed", "downloaded", "undelivered"}}


def step_violations(sim: Sim) -> list[str]:
    """I1, I2, I5, I6, I7, I8, E0 over the current state and history."""
    w = sim.world
    out = download_violations(w)
    for browser in sorted(w.browsers):
        record = record_job_id(sim, browser)
        if record is not None and (browser, record) in sim.settled:
            out.append(f"I5: storage of {browser} keeps {record} after its cancel/failure was settled")
    clicks = cancel_clicks(sim)
    for tab in sim.open_tabs():
        out += _tab_violations(sim, tab, clicks)
    out += display_violations(w) + sim.fallbacks + storage_violations(w)
    return out + store_error_violations(w)


def _tab_violations(sim: Sim, tab: Tab, clicks: list[tuple[int, str, str]]) -> list[str]:
    w = sim.world
    hook = tab.hook
    state = hook.state
    job = state.job
    jid = job.id if job is not None else None
    out: list[str] = []
    # I6
    if hook.is_downloading:
        if job is None or job.status != "completed":
            out.append(f"I6: {tab.id} is_downloading but its job is {job.status if job else None}")
        elif not lock_wanted_or_held(sim, tab, jid):
            out.append(f"I6: {tab.id} is_downloading {jid} without asking for or holding its lock")
    if hook.is_exporting:
        status = state.status
        if status in ("queued", "running"):
            if job is None or job.status != status:
                out.append(f"I6: {tab.id} is_exporting in {status} with job status {job.status if job else None}")
        elif status == "starting" or (status == "cancelling" and job is None):
            if not request_alive(sim, tab, "POST", start_path(PID, state.start_token), "start_request"):
                out.append(f"I6: {tab.id} is_exporting ({status}) with no start request alive")
        elif status == "cancelling":
            if not request_alive(sim, tab, "POST", cancel_path(jid), "cancel_request"):
                out.append(f"I6: {tab.id} is_exporting (cancelling {jid}) with no cancel request alive")
        else:
            out.append(f"I6: {tab.id} is_exporting in {status}")
    # I7
    shown = hook.completed_job_id
    if shown is not None:
        for _, clicker, cjob in clicks:
            server_job = w.server.jobs.get(cjob)
            if clicker == tab.id and cjob == shown and not (server_job is not None and server_job.delivered):
                out.append(f"I7: {tab.id} shows {shown} as completed_job_id after its cancel click "
                           f"({state.status}, server {server_job.status if server_job else None})")
                break
    # I8
    auto_ok = state.status == "completed" and state.auto_download
    for timer in w.sched.timers.values():
        if timer.tab == tab.id and timer_purpose(timer) == "auto_download" and not auto_ok:
            out.append(f"I8: {tab.id} has an auto-download timer pending in {state.status}"
                       f" (auto_download={state.auto_download})")
            break
    lock_ok = state.status == "downloading" or (state.status in ("delivering", "downloaded")
                                                and state.handed_out_here)
    for name in lock_names(sim, tab):
        if not lock_ok or name != f"export-download:{jid}":
            out.append(f"I8: {tab.id} asks for or holds lock {name} in {state.status} ({jid})")
    for method, path in live_requests(sim, tab):
        if method != "POST":
            continue
        if path.split("?")[0] == start_path(PID) and not (
                path == start_path(PID, state.start_token)
                and (state.status == "starting" or (state.status == "cancelling" and job is None))):
            out.append(f"I8: {tab.id} start request alive in {state.status}")
        elif path.endswith("/cancel") and not (state.status == "cancelling" and path == cancel_path(jid or "")):
            out.append(f"I8: {tab.id} request POST {path} alive in {state.status} ({jid})")
    return out


def live_requests(sim: Sim, tab: Tab) -> list[tuple[str, str]]:
    """``(method, path)`` of the tab's HTTP requests whose sender still waits for them
    (a leg pending in the world, not aborted)."""
    out = []
    for q in sim.world.sched.queues.values():
        for s in q:
            if s.tab == tab.id and s.kind in ("http-request", "http-response") and isinstance(s.meta, dict) \
                    and s.meta.get("on"):
                method, path = s.label.split(" ")[:2]
                out.append((method, path))
    return out


def request_alive(sim: Sim, tab: Tab, method: str, path: str, activity: str) -> bool:
    """The tab's ``method path`` request is in flight, or its retry timer is pending."""
    if (method, path) in live_requests(sim, tab):
        return True
    return any(t.tab == tab.id and timer_purpose(t) == activity for t in sim.world.sched.timers.values())


def lock_names(sim: Sim, tab: Tab) -> list[str]:
    """The locks the tab holds or is asking for (Web Locks fake, or the storage claims of
    ``StorageClaimLocks``)."""
    w = sim.world
    names = [name for name, (holder, _) in tab.browser.locks.holders.items() if holder == tab.id]
    for q in w.sched.queues.values():
        for s in q:
            if s.tab == tab.id and s.kind == "lock" and isinstance(s.meta, dict) and not s.meta["withdrawn"] \
                    and not s.meta["granted"]:
                names.append(s.label[len("lock "):])
    for key, raw in tab.browser.storage.data.items():
        if key.startswith(LOCK_PREFIX) and f'"owner":"{tab.id}:' in raw:
            names.append(key[len(LOCK_PREFIX):])
    for t in w.sched.timers.values():
        if t.tab == tab.id and timer_purpose(t) in ("attempt", "confirm"):
            names.append(_claim_name(t) or "?")
    return sorted(set(names))


def _claim_name(timer) -> Optional[str]:
    for cell in getattr(timer.run, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, str) and value.startswith(LOCK_PREFIX):
            return value[len(LOCK_PREFIX):]
        if isinstance(value, str) and value.startswith("export-download:"):
            return value
    return None


def lock_wanted_or_held(sim: Sim, tab: Tab, job_id: Optional[str]) -> bool:
    return f"export-download:{job_id}" in lock_names(sim, tab)


def final_violations(sim: Sim) -> list[str]:
    """I3 and I4 (call at quiescence)."""
    w = sim.world
    out: list[str] = []
    clicked = {job for _, _, job in cancel_clicks(sim)}
    tabs = sim.open_tabs()
    for jid, job in sorted(w.server.jobs.items()):
        if job.status != "completed" or jid in clicked:
            continue
        browser = token_browser(job.start_token)
        followers = [t for t in tabs if jid in t.live_jobs and t.browser.name == browser]  # type: ignore[attr-defined]
        mine = [d for d in w.downloads_of(jid) if d.browser == browser]
        reached = [d for d in mine if d.server_status == 200]
        offered_again = any(d.server_status is None for d in mine) and all(
            t.status == "undelivered" for t in tabs if t.browser.name == browser and t.job is not None
            and t.job.id == jid)
        if followers and not reached and not offered_again:
            out.append(f"I3: {jid} completed, never cancelled, followed live by {[t.id for t in followers]} of "
                       f"{browser}, but downloaded {len(mine)} times there ({len(reached)} reached the server)")
    for tab in tabs:
        hook = tab.hook
        job = hook.state.job
        server_job = w.server.jobs.get(job.id) if job is not None else None
        if job is None or (server_job is not None and server_job.status in TERMINAL):
            if hook.is_exporting or hook.is_downloading:
                out.append(f"I4: {tab.id} shows {hook.export_status} for {job.id if job else 'no job'}"
                           f" (server {server_job.status if server_job else None})")
        if server_job is not None and server_job.status in AGREES and hook.export_status != "idle" \
                and hook.export_status not in AGREES[server_job.status]:
            out.append(f"I4: {tab.id} shows {hook.export_status} for {job.id}, server says {server_job.status}")
    return out
