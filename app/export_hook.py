"""``use_advanced_export``: the export hook (C1-C8 of DESIGN.md) built from ``app.hooks``.

The hook keeps the machine state of ``app.machine`` in ``use_state`` (mirrored in a ref so
that callbacks never read a stale value), feeds it events from the ports, executes the
actions of each transition in order, and runs one ``use_effect`` per *activity* of the
current state; each of those effects returns a cleanup that aborts its request, clears
its timer or releases its lock, so leaving a state stops its work (C1: the cancel click
clears the auto-download timer and the lock request before the cancel request is sent).

Ordering of one event: transition -> state written (batched) -> actions (cross-tab post,
storage writes, download) -> end of batch: re-render -> cleanups of changed effects ->
new effects (requests, timers). Events that arrive while one is processed are queued
(run to completion).

Timing constants (ms): ``AUTO_DOWNLOAD_DELAY_MS`` = 300 (the auto-download timer after a
completion seen live: short enough to feel immediate, long enough for a cancel click in
another tab, or its claim, to reach this one first: 150 ms once left a loaded CI machine's
tab too little time to hear of a cancel clicked 100 ms after the completion);
``POLL_INTERVAL_MS`` = 2000 (C7) doubling per failed poll up to ``POLL_MAX_MS`` = 30000,
and every ``POLL_CONNECTED_MS`` = 30000 while the socket is up (a frame lost on an open
socket must not leave the tab waiting forever); socket reconnect 500 ms doubling up to
30000; request retries per ``app.machine.retry_delay_ms``; ``CANCEL_REQUEST_DELAY_MS`` = 60 before
the first cancel request (C1: the cross-tab news goes out at once and every tab repaints
the cancel first; the server's answer and its socket events, which every tab must handle
too, come after. Nothing can be downloaded meanwhile (the cancelled mark), and R2 cancels
a job that completes meanwhile. See DECISIONS.md.)

Endpoints (DESIGN.md): POST ``/api/projects/{pid}/exports``, GET ``/api/exports/{id}``,
POST ``/api/exports/{id}/cancel``, download ``/api/exports/{id}/download``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Union

from pydantic import ValidationError

from app import crosstab, persistence
from app.hooks import mount, use_callback, use_effect, use_ref, use_state
from app.machine import (
    POLLABLE, AutoDownloadDue, Cancel, CancelAnswered, ClearPersist, ClearStartCancel, Dismiss, Download, ExportState,
    ExportView,
    FetchFailed, JobUpdate, LockResult, Marks, MarkStartCancel, Persist, Post, Remote, Restore, Start, StartAccepted,
    StartDownload, StartFailed, StartRejected, Update, Warn, WriteMark, activities, event_job_id,
    initial_state, retry_delay_ms, transition, view,
)
from app.models import ExportEvent, ExportJob, ExportOptions
from app.ports import Cancel as CancelFn
from app.ports import HttpResponse, Ports, noop
from app.store import Computed, batch, computed, detached, report_error

AUTO_DOWNLOAD_DELAY_MS = 300.0
POLL_INTERVAL_MS = 2000.0
POLL_MAX_MS = 30_000.0
POLL_CONNECTED_MS = 30_000.0
CANCEL_REQUEST_DELAY_MS = 60.0
RECONNECT_BASE_MS = 500.0
RECONNECT_MAX_MS = 30_000.0


def start_path(project_id: int, start_token: Optional[str] = None) -> str:
    """POST here with the options to start an export (202 job | 409 {detail, job});
    ``start_token`` names the start (R1: a repeated POST gets the job the first one made)."""
    path = f"/api/projects/{project_id}/exports"
    return path if start_token is None else f"{path}?start_token={start_token}"


def event_start_token(event: Any) -> Optional[str]:
    """The start token an event carries about its job, if any."""
    if isinstance(event, (StartAccepted, Restore)):
        return event.job.start_token
    if isinstance(event, Update):
        update = event.update
        return update.job.start_token if update.job is not None else update.start_token
    return None


def job_path(job_id: str) -> str:
    """GET the job JSON here."""
    return f"/api/exports/{job_id}"


def cancel_path(job_id: str) -> str:
    """POST here to cancel (200 job | 409 {detail: "already downloaded", job})."""
    return f"/api/exports/{job_id}/cancel"


def download_url(job_id: str) -> str:
    """The archive's download URL (handed to ``Downloader.download``)."""
    return f"/api/exports/{job_id}/download"


def export_filename(job: ExportJob) -> str:
    """The name the page asks the browser to save the archive under."""
    return f"cellhub-project-{job.project_id}-export-{job.id}.zip"


def poll_delay_ms(errors: int) -> float:
    """C7: 2 s, doubled per consecutive failed poll, at most 30 s."""
    return min(POLL_INTERVAL_MS * 2 ** max(errors, 0), POLL_MAX_MS)


def reconnect_delay_ms(failures: int) -> float:
    """Socket reconnect backoff after ``failures`` consecutive closes (>= 1)."""
    return min(RECONNECT_BASE_MS * 2 ** max(failures - 1, 0), RECONNECT_MAX_MS)


def error_detail(body: Any, status: int) -> str:
    """A readable message from an error body: the server's ``{"detail": str | [{field, reason}]}``
    (R8) or FastAPI's ``[{loc, msg}]``; ``HTTP <status>`` when the body says nothing."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list) and detail:
        parts = []
        for item in detail:
            if isinstance(item, dict):
                if "field" in item or "reason" in item:
                    loc, msg = str(item.get("field") or ""), str(item.get("reason") or "invalid")
                else:
                    loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                    msg = str(item.get("msg", "invalid"))
                parts.append(f"{loc}: {msg}" if loc else msg)
        if parts:
            return "; ".join(parts)
    return f"HTTP {status}"


def _parse_job(body: Any) -> Optional[ExportJob]:
    try:
        return ExportJob.model_validate(body)
    except ValidationError:
        return None


@dataclass(frozen=True)
class AdvancedExport(ExportView):
    """What the hook returns on each render: the values of that render (plain values, as
    React's hooks return: the fields of ``app.machine.ExportView``) and stable callbacks
    that always act on the latest state.

    ``export_progress`` is 0..100; ``export_status`` a machine state name
    (``app.machine.STATES``); ``completed_job_id`` is set in completed/downloading/
    downloaded; ``notice`` is an informational line (e.g. "downloaded in another tab");
    ``can_download`` is True for a completed job offered with a Download button (C8);
    ``socket_connected`` tells whether the WebSocket is up; ``state`` is the machine state.
    """

    socket_connected: bool
    state: ExportState
    start_export: Callable[..., None]
    cancel_export: Callable[[], None]
    download: Callable[[str], None]
    dismiss: Callable[[], None]


class _Runtime:
    """The imperative half of the hook: event queue, action execution, in-flight requests."""

    def __init__(self, project_id: int, ports: Ports, state_ref: Any, set_state: Callable) -> None:
        self.project_id = project_id
        self.ports = ports
        self.state_ref = state_ref
        self.set_state = set_state
        self.queue: deque = deque()
        self.busy = False
        self.alive = True
        self.refreshes: dict[int, CancelFn] = {}
        self.refresh_ids = 0
        self.refresh_pending = False
        self.poll_errors = 0
        self.starts = 0

    # -- events
    def dispatch(self, event: Any) -> None:
        if not self.alive:
            return
        self.queue.append(event)
        if self.busy:
            return
        self.busy = True
        try:
            while self.queue and self.alive:
                self._process(self.queue.popleft())
        finally:
            self.busy = False

    def _process(self, event: Any) -> None:
        try:
            if hasattr(event, "marks"):
                job_id = event_job_id(event)
                if job_id is not None:
                    event = replace(event, marks=self.marks(job_id, self._token_of(event, job_id)))
            old = self.state_ref.current
            new, actions = transition(old, event)
        except Exception as exc:
            report_error(exc, f"export transition {type(event).__name__}")
            return
        if new is old and not actions:
            return
        self.state_ref.current = new
        with batch():
            self.set_state(new)
            for action in actions:
                try:
                    self.execute(action)
                except Exception as exc:
                    report_error(exc, f"export action {type(action).__name__}")
        if self.refresh_pending and new.job is not None:
            # A refresh asked for while the job id was unknown (a reconnect while starting):
            # what the socket missed meanwhile may be the job's completion (F3).
            self.refresh_pending = False
            self.refresh_now()

    def _token_of(self, event: Any, job_id: str) -> Optional[str]:
        """The start token of the event's job: from the event, else from the followed job."""
        token = event_start_token(event)
        if token is None:
            job = self.state_ref.current.job
            if job is not None and job.id == job_id:
                token = job.start_token
        return token

    def marks(self, job_id: str, start_token: Optional[str] = None) -> Marks:
        """The storage marks of ``job_id``. A start-cancelled mark naming the job's
        ``start_token`` becomes the job's own cancelled mark here (C1: now that the job id is
        known, every tab's guards see the cancel)."""
        p = self.ports
        now = p.clock.now()
        marks = persistence.read_marks(p.storage, job_id, now, p.log)
        if (start_token is not None and not marks.cancelled
                and persistence.has_start_cancel(p.storage, start_token, now, p.log)):
            persistence.write_mark(p.storage, "cancelled", job_id, now, p.tab_id)
            marks = replace(marks, cancelled=True)
        return marks

    # -- actions
    def execute(self, action: Any) -> None:
        p = self.ports
        now = p.clock.now()
        if isinstance(action, Post):
            p.channel.post(crosstab.make_message(p.tab_id, action.kind, action.job, now).model_dump())
        elif isinstance(action, Persist):
            persistence.save(p.storage, self.project_id, action.job, now, p.tab_id, action.replace_other)
        elif isinstance(action, ClearPersist):
            persistence.clear(p.storage, self.project_id, action.job_id, now, p.tab_id)
        elif isinstance(action, WriteMark):
            persistence.write_mark(p.storage, action.kind, action.job_id, now, p.tab_id)
        elif isinstance(action, MarkStartCancel):
            if action.start_token is not None:
                persistence.write_start_cancel(p.storage, action.start_token, now, p.tab_id)
        elif isinstance(action, ClearStartCancel):
            if action.start_token is not None:
                persistence.clear_start_cancel(p.storage, action.start_token)
        elif isinstance(action, StartDownload):
            p.downloader.download(download_url(action.job.id), export_filename(action.job))
        elif isinstance(action, Warn):
            p.log.warn(action.message)
        else:
            raise TypeError(f"unknown action {action!r}")

    # -- inputs
    def on_socket_message(self, message: dict) -> None:
        if not isinstance(message, dict) or not str(message.get("type", "")).startswith("export."):
            return  # other message types (hello, ping) are not ours
        try:
            ev = ExportEvent.model_validate(message)
        except ValidationError as exc:
            self.ports.log.warn(f"dropped malformed socket event: {exc.error_count()} invalid fields")
            return
        job = self.state_ref.current.job
        gap = job is not None and ev.job_id == job.id and ev.seq > job.seq + 1
        self.dispatch(Update(JobUpdate(ev.job_id, ev.project_id, ev.seq, ev.status, ev.progress,
                                       ev.stage, ev.message, start_token=ev.start_token), "socket"))
        if gap:
            self.refresh_now()  # R6: seq grows by one per event, so a frame was lost (F2)

    def on_channel_message(self, raw: Any) -> None:
        msg, problem = crosstab.parse_message(raw, self.ports.tab_id)
        if problem is not None:
            self.ports.log.warn(f"dropped malformed cross-tab message: {problem}")
        if msg is None or msg.project_id != self.project_id:
            return
        self.dispatch(crosstab.message_to_event(msg))

    def on_storage_change(self, key: str, value: Optional[str]) -> None:
        p = self.ports
        if key == persistence.storage_key(self.project_id):
            # The event's value may be old news by the time it is handled (events queue up):
            # the key's value now is the truth.
            value = p.storage.get(key)
            if value is None:
                return  # a removal says nothing about why; the channel / marks say it
            record, problem = persistence.decode_record(value, self.project_id, p.clock.now())
            if problem is not None and problem != "expired":
                p.log.warn(f"ignored persisted export written by another tab: {problem}")
            if record is not None:
                self.dispatch(Update(JobUpdate.from_job(record.job), "storage"))
            return
        token = persistence.parse_start_cancel_key(key)
        if token is not None:
            job = self.state_ref.current.job
            if value is not None and job is not None and job.start_token == token:
                # Cancel clicked before the 202, in the tab whose start made the job we follow.
                self.dispatch(Remote("cancel-requested", job.id, self.project_id))
            return
        parsed = persistence.parse_mark_key(key)
        if parsed is None or value is None:
            return
        kind, job_id = parsed
        remote = "cancel-requested" if kind == "cancelled" else "downloaded"
        self.dispatch(Remote(remote, job_id, self.project_id))

    def refresh_now(self) -> None:
        """One GET of the current job (C7: on reconnect and when the tab becomes visible)."""
        state = self.state_ref.current
        if self.alive and state.job is None and state.status in ("starting", "cancelling"):
            self.refresh_pending = True  # performed once the 202 names the job
            return
        if not self.alive or state.job is None or state.status not in POLLABLE | {"completed"}:
            return
        self.refresh_ids += 1
        rid = self.refresh_ids
        job_id = state.job.id

        def done() -> None:
            self.refreshes.pop(rid, None)

        def on_response(resp: HttpResponse) -> None:
            done()
            self.handle_get(job_id, resp, "poll")

        def on_error(message: str) -> None:
            done()

        self.refreshes[rid] = self.ports.http.request("GET", job_path(job_id), None, on_response, on_error)

    def handle_get(self, job_id: str, resp: HttpResponse, source: str) -> bool:
        """Dispatch a GET answer; returns False when it was an error worth a retry."""
        if resp.status == 200:
            job = _parse_job(resp.body)
            if job is None or job.id != job_id:
                self.ports.log.warn(f"ignored malformed job in GET {job_path(job_id)}")
                self.dispatch(FetchFailed(job_id, "retry", "malformed answer"))
                return False
            if job.project_id != self.project_id:
                self.dispatch(FetchFailed(job_id, "gone", "job of another project"))
                return True
            self.dispatch(Update(JobUpdate.from_job(job), source))
            return True
        if resp.status in (404, 410):
            self.dispatch(FetchFailed(job_id, "gone", error_detail(resp.body, resp.status)))
            return True
        self.dispatch(FetchFailed(job_id, "retry", error_detail(resp.body, resp.status)))
        return False

    def stop(self) -> None:
        self.alive = False
        self.queue.clear()
        for cancel in list(self.refreshes.values()):
            cancel()
        self.refreshes.clear()


def _after(ports: Ports, delay_ms: float, fn: Callable[[], CancelFn]) -> CancelFn:
    """Run ``fn`` (which starts something and returns its Cancel) after ``delay_ms``, or now
    when the delay is 0; the returned Cancel stops whichever is pending."""
    inner: list[CancelFn] = []
    if delay_ms <= 0:
        inner.append(fn())
        return lambda: inner and inner[0]()

    def fire() -> None:
        inner.append(fn())

    timer = ports.clock.set_timeout(fire, delay_ms)

    def cancel() -> None:
        timer()
        if inner:
            inner[0]()

    return cancel


def use_advanced_export(project_id: int, ports: Ports) -> AdvancedExport:
    """The export hook; call it while a component renders (``app.hooks.mount``).

    ``project_id`` and ``ports`` are fixed for the life of the mounted component (mount
    anew to switch project; ``ValueError`` otherwise). Returns ``AdvancedExport``.
    """
    state, set_state = use_state(lambda: initial_state(project_id))
    state_ref = use_ref(state)
    socket_up, set_socket_up = use_state(False)
    poll_round, set_poll_round = use_state(0)
    rt_ref = use_ref(None)
    if rt_ref.current is None:
        rt_ref.current = _Runtime(project_id, ports, state_ref, set_state)
    rt: _Runtime = rt_ref.current
    if rt.project_id != project_id or rt.ports is not ports:
        raise ValueError("use_advanced_export: project_id and ports must not change; mount anew")

    acts = activities(state)
    job_id = state.job_id

    # Mount: restore the persisted export (C5, C8); unmount: stop everything.
    def on_mount() -> CancelFn:
        record = persistence.load(ports.storage, project_id, ports.clock.now(), ports.log)
        if record is not None:
            rt.dispatch(Restore(record.job))
        return rt.stop

    use_effect(on_mount, [])

    # Inputs: cross-tab channel, storage events, visibility, WebSocket with reconnects.
    def subscribe() -> CancelFn:
        cancels = [
            ports.channel.subscribe(rt.on_channel_message),
            ports.storage.subscribe(rt.on_storage_change),
            ports.visibility.subscribe(rt.refresh_now),
        ]
        sock = {"close": noop, "timer": noop, "failures": 0, "open": False, "gen": 0}

        def connect() -> None:
            sock["timer"] = noop
            sock["gen"] += 1
            gen = sock["gen"]

            def on_open() -> None:
                if gen != sock["gen"]:
                    return
                sock["failures"] = 0
                sock["open"] = True
                set_socket_up(True)
                rt.refresh_now()  # C7: once on (re)connect, to catch what was missed

            def on_close() -> None:
                if gen != sock["gen"]:
                    return
                sock["gen"] += 1  # silence this connection for good
                sock["open"] = False
                sock["failures"] += 1
                set_socket_up(False)
                sock["timer"] = ports.clock.set_timeout(connect, reconnect_delay_ms(sock["failures"]))

            def on_message(msg: dict) -> None:
                if gen == sock["gen"]:
                    rt.on_socket_message(msg)

            sock["close"] = ports.socket.connect(on_open, on_message, on_close)

        connect()

        def cleanup() -> None:
            sock["gen"] += 1
            sock["timer"]()
            sock["close"]()
            for cancel in cancels:
                cancel()

        return cleanup

    use_effect(subscribe, [])

    # Activity start_request: POST the options (retries: R1 makes them safe).
    start_on = "start_request" in acts

    def start_request() -> Optional[CancelFn]:
        if not start_on:
            return None
        st = state_ref.current
        options = st.options or ExportOptions()

        def send() -> CancelFn:
            def on_response(resp: HttpResponse) -> None:
                if resp.status in (200, 201, 202):
                    job = _parse_job(resp.body)
                    if job is not None:
                        rt.dispatch(StartAccepted(job, conflict=False))
                    else:
                        ports.log.warn("malformed job in the start answer")
                        rt.dispatch(StartFailed("malformed answer", retryable=True))
                elif resp.status == 409 and isinstance(resp.body, dict) and _parse_job(resp.body.get("job")):
                    rt.dispatch(StartAccepted(_parse_job(resp.body["job"]), conflict=True))
                else:
                    # 507: the user's archive quota (R10); asking again cannot help until
                    # they delete exports, so it is shown like a refusal, not retried.
                    rt.dispatch(StartFailed(error_detail(resp.body, resp.status),
                                            retryable=resp.status >= 500 and resp.status != 507))

            def on_error(message: str) -> None:
                rt.dispatch(StartFailed(message or "network error", retryable=True))

            return ports.http.request("POST", start_path(project_id, st.start_token),
                                      options.model_dump(mode="json"), on_response, on_error)

        return _after(ports, retry_delay_ms(st.attempt), send)

    use_effect(start_request, [start_on, state.attempt])

    # Activity cancel_request (C2): the state is already "cancelling" when this runs.
    cancel_on = "cancel_request" in acts

    def cancel_request() -> Optional[CancelFn]:
        if not cancel_on or job_id is None:
            return None
        jid = job_id

        def send() -> CancelFn:
            def on_response(resp: HttpResponse) -> None:
                body = resp.body if isinstance(resp.body, dict) else {}
                job = _parse_job(resp.body) if resp.status == 200 else _parse_job(body.get("job"))
                detail = error_detail(resp.body, resp.status)
                if resp.status == 200:
                    rt.dispatch(CancelAnswered("ok", job))
                elif resp.status == 409:
                    if (job is not None and job.delivered) or "download" in detail.lower():
                        rt.dispatch(CancelAnswered("downloaded", job, detail))
                    elif job is not None and job.status == "cancelled":
                        rt.dispatch(CancelAnswered("ok", job))
                    else:
                        rt.dispatch(CancelAnswered("refused", job, detail))
                elif resp.status in (404, 410):
                    rt.dispatch(CancelAnswered("gone", None, detail))
                elif resp.status >= 500:
                    rt.dispatch(CancelAnswered("retry", None, detail))
                else:
                    rt.dispatch(CancelAnswered("refused", None, detail))

            def on_error(message: str) -> None:
                rt.dispatch(CancelAnswered("retry", None, message or "network error"))

            return ports.http.request("POST", cancel_path(jid), None, on_response, on_error)

        attempt = state_ref.current.attempt
        return _after(ports, retry_delay_ms(attempt) if attempt else CANCEL_REQUEST_DELAY_MS, send)

    use_effect(cancel_request, [cancel_on, job_id, state.attempt])

    # Activity fetch_job (C8): re-query a restored job before anything is offered.
    fetch_on = "fetch_job" in acts

    def fetch_job() -> Optional[CancelFn]:
        if not fetch_on or job_id is None:
            return None
        jid = job_id

        def send() -> CancelFn:
            return ports.http.request("GET", job_path(jid), None,
                                      lambda resp: rt.handle_get(jid, resp, "fetch"),
                                      lambda msg: rt.dispatch(FetchFailed(jid, "retry", msg)))

        return _after(ports, retry_delay_ms(state_ref.current.attempt), send)

    use_effect(fetch_job, [fetch_on, job_id, state.attempt])

    # Activity poll (C7): every 2 s while the socket is down; backs off on errors. While it
    # is up, every 30 s: an open socket can still lose a frame (F2, F3 in DECISIONS.md).
    poll_on = "poll" in acts

    def poll() -> Optional[CancelFn]:
        if not poll_on or job_id is None:
            return None
        jid = job_id

        def next_round() -> None:
            set_poll_round(lambda n: n + 1)

        def send() -> CancelFn:
            def on_response(resp: HttpResponse) -> None:
                ok = rt.handle_get(jid, resp, "poll")
                rt.poll_errors = 0 if ok else rt.poll_errors + 1
                next_round()

            def on_error(message: str) -> None:
                rt.poll_errors += 1
                next_round()

            return ports.http.request("GET", job_path(jid), None, on_response, on_error)

        return _after(ports, POLL_CONNECTED_MS if socket_up else poll_delay_ms(rt.poll_errors), send)

    use_effect(poll, [poll_on, socket_up, job_id, poll_round])

    # Activity auto_download_timer: deps are the job and the status (C1: cleanup clears it).
    auto_on = "auto_download_timer" in acts

    def auto_download() -> Optional[CancelFn]:
        if not auto_on or job_id is None:
            return None
        jid = job_id
        return ports.clock.set_timeout(lambda: rt.dispatch(AutoDownloadDue(jid)), AUTO_DOWNLOAD_DELAY_MS)

    use_effect(auto_download, [auto_on, job_id, state.status])

    # Activity download_lock (C4): held from the request until this tab moves on.
    lock_on = "download_lock" in acts

    def download_lock() -> Optional[CancelFn]:
        if not lock_on or job_id is None:
            return None
        jid = job_id
        return ports.locks.try_acquire(f"export-download:{jid}",
                                       lambda release: rt.dispatch(LockResult(jid, release is not None)))

    use_effect(download_lock, [lock_on, job_id])

    # Callbacks: stable, always acting on the latest state.
    def start_export(options: Union[ExportOptions, dict, None] = None) -> None:
        if options is None:
            opts = ExportOptions()
        elif isinstance(options, ExportOptions):
            opts = options
        else:
            try:
                opts = ExportOptions.model_validate(options)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}"
                                     for err in exc.errors())
                rt.dispatch(StartRejected(f"invalid export options: {problems}"))
                return
        rt.starts += 1
        token = ports.new_token() if ports.new_token is not None else f"{ports.tab_id}.{rt.starts}"
        rt.dispatch(Start(opts, token))

    def cancel_export() -> None:
        rt.dispatch(Cancel())

    def download(jid: str) -> None:
        rt.dispatch(Download(jid))

    def dismiss() -> None:
        rt.dispatch(Dismiss())

    start_cb = use_callback(start_export, [])
    cancel_cb = use_callback(cancel_export, [])
    download_cb = use_callback(download, [])
    dismiss_cb = use_callback(dismiss, [])

    return AdvancedExport(
        **vars(view(state)), socket_connected=socket_up, state=state,
        start_export=start_cb, cancel_export=cancel_cb, download=download_cb, dismiss=dismiss_cb,
    )


VALUE_FIELDS: tuple[str, ...] = (
    "current_job", "is_exporting", "is_downloading", "export_progress", "export_status",
    "completed_job_id", "error_message", "notice", "can_download", "can_cancel", "can_dismiss",
    "socket_connected", "state",
)
_DEFAULTS: dict[str, Any] = {"is_exporting": False, "is_downloading": False, "export_progress": 0.0,
                             "export_status": "idle", "can_download": False, "can_cancel": False,
                             "can_dismiss": False, "socket_connected": False}


class ExportController:
    """The page's handle on a mounted ``use_advanced_export``: each name of
    ``VALUE_FIELDS`` is a read-only store ``Computed`` (read ``.value`` inside a store
    effect to re-render on change); the four methods forward to the hook's callbacks."""

    def __init__(self, mounted: Any) -> None:
        self._mounted = mounted
        self._computeds: list[Computed] = []
        for name in VALUE_FIELDS:
            c = detached(lambda name=name: computed(lambda: self._read(name)))
            self._computeds.append(c)
            setattr(self, name, c)

    def _read(self, name: str) -> Any:
        result = self._mounted.result.value
        if result is None:
            return _DEFAULTS.get(name)
        return getattr(result, name)

    def _hook(self) -> Optional[AdvancedExport]:
        return self._mounted.result.peek() if self._mounted.is_mounted else None

    def start_export(self, options: Union[ExportOptions, dict, None] = None) -> None:
        hook = self._hook()
        if hook is not None:
            hook.start_export(options)

    def cancel_export(self) -> None:
        hook = self._hook()
        if hook is not None:
            hook.cancel_export()

    def download(self, job_id: str) -> None:
        hook = self._hook()
        if hook is not None:
            hook.download(job_id)

    def dismiss(self) -> None:
        hook = self._hook()
        if hook is not None:
            hook.dismiss()

    @property
    def mounted(self) -> Any:
        """The ``app.hooks.Mounted`` component (``render_count``, ``result``)."""
        return self._mounted

    def dispose(self) -> None:
        for c in self._computeds:
            c.dispose()


def create_export_controller(project_id: int, ports: Ports) -> tuple[ExportController, Callable[[], None]]:
    """Mount a component running ``use_advanced_export(project_id, ports)``; returns
    ``(controller, unmount)``. ``unmount()`` stops every request, timer, lock and
    subscription of the hook (idempotent)."""
    mounted = detached(lambda: mount(lambda: use_advanced_export(project_id, ports)))
    controller = ExportController(mounted)

    def unmount() -> None:
        mounted.unmount()
        controller.dispose()

    return controller, unmount
