"""The client export state machine, as data (C1-C8 of DESIGN.md).

``transition(state, event) -> (new_state, actions)`` is pure: it reads only its
arguments, and ``actions`` are plain records the hook executes in order (post a cross-tab
message, write or clear the persisted record, write a storage mark, start the download).
Long-lived work (HTTP requests, timers, the download lock, polling) is not an action but
an *activity* of a state (``ACTIVITIES`` / ``activities(state)``): the hook runs one
``use_effect`` per activity whose deps include the state, so leaving the state runs the
cleanup that aborts the request, clears the timer or releases the lock.

The rules are the rows of ``RULES``: the first row whose event type matches, whose
source set holds the current state and whose guard holds decides the target state, the
field changes and the actions. No matching row: the event is ignored (state unchanged, no
actions). ``describe_rules()`` renders the table as text.

Machine states: ``idle``, ``restoring`` (a persisted job is being re-queried, C8),
``starting`` (POST in flight), ``queued``, ``running``, ``cancelling`` (C1: local, before
any answer), ``cancelled``, ``completed`` (auto-download pending when ``auto_download``,
else offered with a Download button), ``downloading`` (asking for the download lock),
``downloaded``, ``failed``.

Storage marks (``Marks``): the hook reads, just before each event is processed, whether
storage holds a "cancel requested" and a "downloaded" mark for the event's job; the
machine uses them so that a cancel clicked in any tab, or a download made by any tab,
wins over messages still on their way (C1, C4). A cancel clicked before the 202 names the
start instead (its ``start_token``, kept by the server on the job, R1): the hook turns a
start-cancelled mark that names the event's job into that job's cancelled mark.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Union

from app.models import ACTIVE_STATUSES, ExportJob, ExportOptions

STATES: tuple[str, ...] = (
    "idle", "restoring", "starting", "queued", "running", "cancelling", "cancelled",
    "completed", "downloading", "downloaded", "failed",
)
ACTIVE = frozenset({"queued", "running"})
ADOPTABLE = frozenset({"idle", "cancelled", "downloaded", "failed", "completed"})
"""States in which news of another active job of the project is followed (no job of ours
is in flight)."""
STARTABLE = ADOPTABLE
EXPORTING = frozenset({"starting", "queued", "running", "cancelling"})
POLLABLE = frozenset({"queued", "running", "cancelling"})

MAX_START_ATTEMPTS = 4
"""POST attempts before a start gives up (retrying is safe: the POST carries its
``start_token``, and R1 answers a repeated token with the job the first copy made).
While cancelling, the POST is retried without limit (C2-like): only its answer can
name the job that must be cancelled."""


def retry_delay_ms(attempt: int) -> float:
    """Backoff before retry number ``attempt`` (0 = first try, no delay): 500 ms doubled
    per attempt, at most 10 s. Deterministic (no jitter) so tests and replays agree."""
    if attempt <= 0:
        return 0.0
    return float(min(500 * 2 ** (attempt - 1), 10_000))


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class JobUpdate:
    """News about a job from any source. ``job`` is set when the source sent the whole job
    (GET, 202/409 answers, persisted records); ``None`` fields are unknown."""

    job_id: str
    project_id: int
    seq: int
    status: str
    progress: Optional[float] = None
    stage: Optional[str] = None
    message: Optional[str] = None
    delivered: Optional[bool] = None
    job: Optional[ExportJob] = None
    start_token: Optional[str] = None

    @staticmethod
    def from_job(job: ExportJob) -> "JobUpdate":
        return JobUpdate(job.id, job.project_id, job.seq, job.status, job.progress, job.stage,
                         job.message, job.delivered, job, job.start_token)

    def to_job(self, base: Optional[ExportJob]) -> ExportJob:
        """The job after this update: the full job if sent, else ``base`` with the known
        fields replaced, else a stub built from the update alone."""
        if self.job is not None:
            return self.job
        changes: dict[str, Any] = {"status": self.status, "seq": self.seq}
        for name in ("progress", "stage", "message", "delivered", "start_token"):
            value = getattr(self, name)
            if value is not None:
                changes[name] = value
        if self.status == "completed":
            changes.setdefault("progress", 100.0)
        if base is not None and base.id == self.job_id:
            return base.model_copy(update=changes)
        return ExportJob(id=self.job_id, project_id=self.project_id, created_at="", **changes)


@dataclass(frozen=True)
class Marks:
    """What storage says about the event's job: a tab asked to cancel it (also: a tab
    clicked cancel while the start request that made it was unanswered) / downloaded it."""

    cancelled: bool = False
    downloaded: bool = False


@dataclass(frozen=True)
class ExportState:
    """The machine's whole state (one per tab and project)."""

    project_id: int
    status: str = "idle"
    job: Optional[ExportJob] = None
    error: Optional[str] = None
    notice: Optional[str] = None
    auto_download: bool = False
    live: bool = False
    attempt: int = 0
    downloaded_here: bool = False
    options: Optional[ExportOptions] = None
    early: Optional[JobUpdate] = None
    early_source: str = "socket"
    adopting: bool = False
    dismissed: frozenset[str] = frozenset()
    start_token: Optional[str] = None
    """The token of this tab's last start request (sent with the POST, R1)."""

    @property
    def job_id(self) -> Optional[str]:
        return self.job.id if self.job is not None else None


def initial_state(project_id: int) -> ExportState:
    return ExportState(project_id=project_id)


# Events ----------------------------------------------------------------------------

SOURCES = ("socket", "poll", "fetch", "channel", "storage", "answer")
SERVER_SOURCES = frozenset({"socket", "poll", "fetch", "answer"})


@dataclass(frozen=True)
class Restore:
    """A valid persisted record was found on mount (C8)."""
    job: ExportJob


@dataclass(frozen=True)
class Start:
    """Export clicked: ``start_token`` names this start (unique per click, R1)."""
    options: ExportOptions
    start_token: Optional[str] = None


@dataclass(frozen=True)
class StartRejected:
    """The options did not validate; nothing was sent."""
    message: str


@dataclass(frozen=True)
class StartAccepted:
    """202 (``conflict=False``) or 409 with the active job (``conflict=True``, R1)."""
    job: ExportJob
    conflict: bool = False
    marks: Marks = Marks()


@dataclass(frozen=True)
class StartFailed:
    message: str
    retryable: bool


@dataclass(frozen=True)
class Cancel:
    """The user clicked cancel in this tab."""


@dataclass(frozen=True)
class CancelAnswered:
    """Answer to POST cancel: ``outcome`` is ``ok`` (200), ``downloaded`` (409 already
    downloaded), ``gone`` (404/410), ``refused`` (other 4xx) or ``retry`` (network, 5xx)."""
    outcome: str
    job: Optional[ExportJob] = None
    message: str = ""


@dataclass(frozen=True)
class Update:
    update: JobUpdate
    source: str
    marks: Marks = Marks()


@dataclass(frozen=True)
class FetchFailed:
    """GET of the job failed: ``gone`` (404/410) or ``retry`` (network, 5xx)."""
    job_id: str
    outcome: str
    message: str = ""


@dataclass(frozen=True)
class Remote:
    """A cross-tab message that is not a job status: ``cancel-requested``,
    ``download-claimed``, ``downloaded`` or ``dismissed``."""
    kind: str
    job_id: str
    project_id: int
    marks: Marks = Marks()


@dataclass(frozen=True)
class AutoDownloadDue:
    job_id: str
    marks: Marks = Marks()


@dataclass(frozen=True)
class Download:
    """The user clicked Download for ``job_id``."""
    job_id: str
    marks: Marks = Marks()


@dataclass(frozen=True)
class LockResult:
    job_id: str
    granted: bool
    marks: Marks = Marks()


@dataclass(frozen=True)
class Dismiss:
    """The user dismissed the finished export."""


Event = Union[Restore, Start, StartRejected, StartAccepted, StartFailed, Cancel, CancelAnswered,
              Update, FetchFailed, Remote, AutoDownloadDue, Download, LockResult, Dismiss]


def event_job_id(event: Any) -> Optional[str]:
    """The job an event is about (whose storage marks the hook reads), if any."""
    if isinstance(event, (StartAccepted, Restore)):
        return event.job.id
    if isinstance(event, Update):
        return event.update.job_id
    if isinstance(event, (Remote, AutoDownloadDue, Download, LockResult, FetchFailed)):
        return event.job_id
    return None


# Actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    """Post a cross-tab message (C6) about ``job``."""
    kind: str
    job: ExportJob


@dataclass(frozen=True)
class Persist:
    """Write the persisted record (C5). ``replace_other``: may overwrite a record of another
    job that is still active (only a job this tab just started or attached to may)."""
    job: ExportJob
    replace_other: bool = False


@dataclass(frozen=True)
class ClearPersist:
    """Remove the persisted record if it is about ``job_id`` (C5)."""
    job_id: str


@dataclass(frozen=True)
class WriteMark:
    """Write the storage mark ``kind`` (``cancelled`` or ``downloaded``) for ``job_id``."""
    kind: str
    job_id: str


@dataclass(frozen=True)
class MarkStartCancel:
    """Write the "cancel clicked while starting" mark of the start ``start_token`` (C1
    before the job id is known: any tab that meets the job this start made cancels it)."""
    start_token: Optional[str]


@dataclass(frozen=True)
class ClearStartCancel:
    """Remove the start-cancelled mark of ``start_token`` (the job's own mark replaces it)."""
    start_token: Optional[str]


@dataclass(frozen=True)
class StartDownload:
    """Hand the archive of ``job`` to the browser (exactly once per job over all tabs)."""
    job: ExportJob


@dataclass(frozen=True)
class Warn:
    message: str


Action = Union[Post, Persist, ClearPersist, WriteMark, MarkStartCancel, ClearStartCancel, StartDownload, Warn]


# ---------------------------------------------------------------------------- guards


class Guard:
    """A named predicate ``(state, event) -> bool``; combine with ``&``, ``|`` and ``~``."""

    def __init__(self, name: str, fn: Callable[[ExportState, Any], bool]) -> None:
        self.name = name
        self.fn = fn

    def __call__(self, state: ExportState, event: Any) -> bool:
        return bool(self.fn(state, event))

    def __and__(self, other: "Guard") -> "Guard":
        return Guard(f"{self.name} & {other.name}", lambda s, e: self(s, e) and other(s, e))

    def __or__(self, other: "Guard") -> "Guard":
        return Guard(f"({self.name} | {other.name})", lambda s, e: self(s, e) or other(s, e))

    def __invert__(self) -> "Guard":
        return Guard(f"~{self.name}", lambda s, e: not self(s, e))

    def __repr__(self) -> str:
        return self.name


ALWAYS = Guard("always", lambda s, e: True)


def _upd(e: Any) -> JobUpdate:
    return e.update


def _is_newer(s: ExportState, u: JobUpdate, source: str) -> bool:
    job = s.job
    if job is None or u.job_id != job.id:
        return False
    if source == "channel":
        # Channel news has no progress: taking its seq would make the socket event with the
        # same seq (and the progress) look old, so it counts only when the status moves.
        return u.seq > job.seq and u.status != job.status
    if u.seq > job.seq:
        return True
    # The same seq can still bring the delivered flag (R4 marks it without an event).
    return u.seq == job.seq and bool(u.delivered) and not job.delivered


for_project = Guard("for_project", lambda s, e: _upd(e).project_id == s.project_id)
same_job = Guard("same_job", lambda s, e: s.job is not None and _upd(e).job_id == s.job.id)
newer = Guard("newer", lambda s, e: _is_newer(s, _upd(e), e.source))
from_fetch = Guard("from_fetch", lambda s, e: e.source == "fetch")
from_server = Guard("from_server", lambda s, e: e.source in SERVER_SOURCES)
adopting = Guard("adopting", lambda s, e: s.adopting)
other_job = Guard("other_job", lambda s, e: s.job is None or _upd(e).job_id != s.job.id)
not_dismissed = Guard("not_dismissed", lambda s, e: _upd(e).job_id not in s.dismissed)
cancel_marked = Guard("cancel_marked", lambda s, e: e.marks.cancelled)
download_marked = Guard("download_marked", lambda s, e: e.marks.downloaded)
retry_answer = Guard("retry_answer", lambda s, e: e.retryable)
delivered = Guard("delivered", lambda s, e: bool(_upd(e).delivered) or e.marks.downloaded)
has_job = Guard("has_job", lambda s, e: s.job is not None)
event_job = Guard("event_job", lambda s, e: s.job is not None and e.job_id == s.job.id)
remote_for_us = Guard("remote_for_us", lambda s, e: e.project_id == s.project_id
                      and s.job is not None and e.job_id == s.job.id)
retryable = Guard("retryable", lambda s, e: e.retryable and s.attempt + 1 < MAX_START_ATTEMPTS)
granted = Guard("granted", lambda s, e: e.granted)
auto_on = Guard("auto_on", lambda s, e: s.auto_download)
auto_download_pending = Guard("auto_download_pending",
                              lambda s, e: s.status == "completed" and s.auto_download)


def status_is(*statuses: str) -> Guard:
    return Guard(f"status in {set(statuses)}", lambda s, e: _upd(e).status in statuses)


def outcome_is(*outcomes: str) -> Guard:
    return Guard(f"outcome in {set(outcomes)}", lambda s, e: e.outcome in outcomes)


def kind_is(kind: str) -> Guard:
    return Guard(f"kind == {kind!r}", lambda s, e: e.kind == kind)


# ----------------------------------------------------------------- targets and updates

SAME = "<same>"
"""Target meaning: stay in the current state (fields may still change)."""


def job_status_target(s: ExportState, e: Any) -> str:
    """The machine state named after the job status (queued, running)."""
    return _upd(e).status


job_status_target.__doc__ = "status of the job"


def _stale_adoption(s: ExportState, e: Any) -> bool:
    return s.adopting and _upd(e).status not in ACTIVE_STATUSES | {"completed"}


def _restored_target(s: ExportState, e: Any) -> str:
    u = _upd(e)
    if _stale_adoption(s, e):
        return "idle"  # the news that made us follow it was stale: the job is over
    if u.status in ACTIVE_STATUSES:
        return "cancelling" if e.marks.cancelled else u.status
    if u.status == "completed":
        if u.delivered or e.marks.downloaded:
            return "downloaded"
        return "cancelling" if e.marks.cancelled else "completed"
    return "cancelled" if u.status == "cancelled" else "failed"


_restored_target.__doc__ = "from the re-queried job (C8)"


def _apply_job(s: ExportState, e: Any) -> dict[str, Any]:
    u = _upd(e)
    return {"job": u.to_job(s.job)}


def _apply_live(s: ExportState, e: Any) -> dict[str, Any]:
    return {**_apply_job(s, e), "live": True, "notice": None}


def _adopt(s: ExportState, e: Any) -> dict[str, Any]:
    return {"job": _upd(e).to_job(None), "live": True, "error": None, "notice": None,
            "auto_download": False, "downloaded_here": False, "attempt": 0, "early": None,
            "adopting": False}


def _adopt_unverified(s: ExportState, e: Any) -> dict[str, Any]:
    return {**_adopt(s, e), "live": False, "adopting": True}


def _completed(s: ExportState, e: Any) -> dict[str, Any]:
    return {**_apply_job(s, e), "auto_download": s.live}


def _failed_update(s: ExportState, e: Any) -> dict[str, Any]:
    u = _upd(e)
    default = "the export expired" if u.status == "expired" else "the export failed"
    return {**_apply_job(s, e), "error": u.message or default, "auto_download": False}


def _downloaded_elsewhere(s: ExportState, e: Any) -> dict[str, Any]:
    if isinstance(e, Update):
        changes = _apply_job(s, e)
    elif s.job is not None:
        # Another tab's word: the job completed and was handed out (its seq is unknown).
        changes = {"job": s.job.model_copy(update={"status": "completed", "progress": 100.0,
                                                   "delivered": True})}
    else:
        changes = {}
    return {**changes, "downloaded_here": False, "auto_download": False,
            "notice": "downloaded in another tab"}


def _restored(s: ExportState, e: Any) -> dict[str, Any]:
    u = _upd(e)
    if _stale_adoption(s, e):
        return {"job": None, "attempt": 0, "adopting": False, "live": False, "early": None}
    changes = {"job": u.to_job(s.job), "attempt": 0, "live": u.status in ACTIVE_STATUSES,
               "auto_download": False, "adopting": False}
    if u.status in ("failed", "expired"):
        changes["error"] = u.message or ("the export expired" if u.status == "expired"
                                         else "the export failed")
    return changes


def _keep_early(s: ExportState, e: Any) -> dict[str, Any]:
    u = _upd(e)
    if u.project_id != s.project_id:
        return {}
    if s.status == "restoring" and (s.job is None or u.job_id != s.job.id):
        return {}
    if s.early is not None and s.early.job_id == u.job_id and s.early.seq >= u.seq:
        return {}
    return {"early": u, "early_source": e.source}


def _start(s: ExportState, e: Start) -> dict[str, Any]:
    return {"job": None, "options": e.options, "error": None, "notice": None, "live": False,
            "attempt": 0, "early": None, "auto_download": False, "downloaded_here": False,
            "start_token": e.start_token}


def _accepted(s: ExportState, e: StartAccepted) -> dict[str, Any]:
    # A repeated start (its first answer lost) may find its job already completed: the
    # user is waiting for that very file, so it downloads as if the completion was seen live.
    return {"job": e.job, "live": True, "attempt": 0, "options": None,
            "auto_download": e.job.status == "completed",
            "notice": "attached to the export already running" if e.conflict else None}


def _accepted_ended(s: ExportState, e: StartAccepted) -> dict[str, Any]:
    default = "the export expired" if e.job.status == "expired" else "the export failed"
    error = None if e.job.status == "cancelled" else (e.job.message or default)
    return {**_accepted(s, e), "auto_download": False, "error": error}


def _accepted_target(s: ExportState, e: StartAccepted) -> str:
    st = e.job.status
    if st in ACTIVE_STATUSES:
        return "cancelling" if e.marks.cancelled else st
    if st == "completed":
        if e.job.delivered or e.marks.downloaded:
            return "downloaded"
        return "cancelling" if e.marks.cancelled else "completed"
    return "cancelled" if st == "cancelled" else "failed"


_accepted_target.__doc__ = "status of the answered job"


def _retry(s: ExportState, e: Any) -> dict[str, Any]:
    return {"attempt": s.attempt + 1}


def _error(prefix: str) -> Callable[[ExportState, Any], dict[str, Any]]:
    def fn(s: ExportState, e: Any) -> dict[str, Any]:
        message = getattr(e, "message", "") or "unknown error"
        return {"error": f"{prefix}{message}", "auto_download": False}
    fn.__name__ = f"error({prefix!r})"
    return fn


def _to_cancelling(s: ExportState, e: Any) -> dict[str, Any]:
    return {"attempt": 0, "auto_download": False, "error": None, "notice": None}


def _cancel_before_job(s: ExportState, e: Any) -> dict[str, Any]:
    # Keep ``attempt``: the start request (still needed to learn the job id) must not restart.
    return {"auto_download": False, "error": None, "notice": None}


def _job_arrived_while_cancelling(s: ExportState, e: StartAccepted) -> dict[str, Any]:
    return {"job": e.job, "attempt": 0, "options": None}


def _cancelled_answer(s: ExportState, e: CancelAnswered) -> dict[str, Any]:
    job = e.job if e.job is not None and s.job is not None and e.job.id == s.job.id else s.job
    if job is not None and job.status != "cancelled":
        job = job.model_copy(update={"status": "cancelled"})
    return {"job": job, "attempt": 0, "notice": None}


def _cancelled_late(s: ExportState, e: Any) -> dict[str, Any]:
    return {**_apply_job(s, e), "downloaded_here": False,
            "notice": "cancelled before the download reached the server"}


def _cancel_gone(s: ExportState, e: CancelAnswered) -> dict[str, Any]:
    return {"attempt": 0, "notice": "the export no longer exists on the server"}


def _cancel_downloaded(s: ExportState, e: CancelAnswered) -> dict[str, Any]:
    job = e.job if e.job is not None and s.job is not None and e.job.id == s.job.id else s.job
    return {"job": job, "attempt": 0, "downloaded_here": False,
            "notice": e.message or "already downloaded"}


def _restore(s: ExportState, e: Restore) -> dict[str, Any]:
    return {"job": e.job, "attempt": 0, "live": False, "error": None, "notice": None, "adopting": False,
            "early": None, "auto_download": False, "downloaded_here": False}


def _gone_idle(s: ExportState, e: Any) -> dict[str, Any]:
    return {"job": None, "attempt": 0, "early": None,
            "notice": "the previous export is no longer available"}


def _gone_failed(s: ExportState, e: Any) -> dict[str, Any]:
    return {"error": "the export no longer exists on the server", "auto_download": False}


def _claimed_elsewhere(s: ExportState, e: Any) -> dict[str, Any]:
    return {"auto_download": False, "notice": "another tab is downloading this export"}


def _downloaded_here(s: ExportState, e: Any) -> dict[str, Any]:
    job = s.job.model_copy(update={"delivered": True}) if s.job is not None else None
    return {"job": job, "downloaded_here": True, "auto_download": False, "notice": None}


def _dismiss(s: ExportState, e: Any) -> dict[str, Any]:
    dismissed = s.dismissed | {s.job.id} if s.job is not None else s.dismissed
    return {"job": None, "error": None, "notice": None, "auto_download": False,
            "downloaded_here": False, "live": False, "attempt": 0, "early": None,
            "dismissed": dismissed}


def _set_error(s: ExportState, e: StartRejected) -> dict[str, Any]:
    return {"error": e.message}


def _no_auto(s: ExportState, e: Any) -> dict[str, Any]:
    return {"auto_download": False}


# -------------------------------------------------------------------- action builders

ActionFn = Callable[[ExportState, ExportState, Any], list]


def _named(name: str, fn: ActionFn) -> ActionFn:
    fn.__name__ = name
    return fn


def post(kind: str) -> ActionFn:
    return _named(f"post {kind}", lambda old, new, e: [Post(kind, new.job)] if new.job else [])


def post_about_previous(kind: str) -> ActionFn:
    """Post about the job the state held before the event (dismiss forgets it)."""
    return _named(f"post {kind}", lambda old, new, e: [Post(kind, old.job)] if old.job else [])


def post_if_server(kind: str) -> ActionFn:
    """Relay server news (socket/poll/fetch) to the other tabs; never relay relayed news."""
    return _named(f"post {kind} (server news)",
                  lambda old, new, e: [Post(kind, new.job)]
                  if new.job and getattr(e, "source", "") in SERVER_SOURCES else [])


def post_progress_if_moved() -> ActionFn:
    return _named("post progress (status moved, server news)",
                  lambda old, new, e: [Post("progress", new.job)]
                  if new.job and e.source in SERVER_SOURCES
                  and (old.job is None or old.job.status != new.job.status) else [])


persist = _named("persist", lambda old, new, e: [Persist(new.job)] if new.job else [])
persist_or_clear = _named(
    "persist, or clear if cancelling/cancelled/failed",
    lambda old, new, e: ([ClearPersist(new.job.id)] if new.status in ("cancelling", "cancelled", "failed")
                         else [Persist(new.job)]) if new.job else [])
persist_new = _named("persist (replace other)",
                     lambda old, new, e: [Persist(new.job, replace_other=True)] if new.job else [])
clear_persist = _named("clear persisted", lambda old, new, e: [ClearPersist(old.job.id)] if old.job else [])
clear_answered = _named("clear persisted (the answered job)",
                        lambda old, new, e: [ClearPersist(new.job.id)] if new.job else [])
mark_cancelled = _named("mark cancelled",
                        lambda old, new, e: [WriteMark("cancelled", new.job.id)] if new.job else [])
start_download = _named("mark downloaded, post download-claimed, download, post downloaded",
                        lambda old, new, e: [WriteMark("downloaded", new.job.id),
                                             Post("download-claimed", new.job),
                                             StartDownload(new.job),
                                             Post("downloaded", new.job)])


mark_start_cancel = _named("mark start cancelled", lambda old, new, e: [MarkStartCancel(old.start_token)])
clear_start_cancel = _named("clear start-cancelled mark", lambda old, new, e: [ClearStartCancel(old.start_token)])


def warn(text: str) -> ActionFn:
    return _named(f"warn {text!r}", lambda old, new, e: [Warn(f"{text} (job {old.job_id})")])


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    """One row: on ``event`` in any of ``sources`` when ``guard`` holds, go to ``target``
    (a state name, ``SAME`` or a function of (state, event)), apply ``update`` (field
    changes) and emit ``actions`` (builders of action records, in order)."""

    event: type
    sources: frozenset[str]
    guard: Guard
    target: Union[str, Callable[[ExportState, Any], str]]
    update: Optional[Callable[[ExportState, Any], dict[str, Any]]] = None
    actions: tuple[ActionFn, ...] = ()
    why: str = ""


def _r(event: type, sources: Any, guard: Guard, target: Any, update: Any = None,
       actions: tuple = (), why: str = "") -> Rule:
    if isinstance(sources, str):
        sources = {sources}
    return Rule(event, frozenset(sources), guard, target, update, tuple(actions), why)


ALL = frozenset(STATES)
UPD_ACTIVE = ACTIVE
FOLLOWED = frozenset({"queued", "running", "completed", "downloading", "cancelling"})

RULES: tuple[Rule, ...] = (
    # ---- restore (C8)
    _r(Restore, "idle", ALWAYS, "restoring", _restore, why="C8: re-query before showing"),
    _r(Update, "restoring", for_project & same_job & from_fetch, _restored_target, _restored,
       (persist_or_clear,), why="C8: completed while closed -> offered, not auto-downloaded"),
    _r(FetchFailed, "restoring", event_job & adopting & Guard("gone", lambda s, e: e.outcome == "gone"),
       "idle", _gone_idle, why="a relayed job the server does not know: forget it quietly"),
    _r(FetchFailed, "restoring", event_job & Guard("gone", lambda s, e: e.outcome == "gone"),
       "idle", _gone_idle, (clear_persist, warn("persisted export no longer on the server")),
       why="C5/C8: a job the server forgot is dropped"),
    _r(FetchFailed, "restoring", event_job, SAME, _retry, why="C8: retry with backoff"),
    # ---- start (R1)
    _r(Start, STARTABLE, ALWAYS, "starting", _start),
    _r(StartRejected, ALL, ALWAYS, SAME, _set_error, why="R8: invalid options never sent"),
    _r(StartAccepted, "starting", Guard("job_ended", lambda s, e: e.job.status in ("cancelled", "failed", "expired")),
       _accepted_target, _accepted_ended, (clear_answered,),
       why="R1: a repeated start (first answer lost) may find its job already over: shown, never kept, and "
           "cleared from storage where another tab kept it (C5; F8)"),
    _r(StartAccepted, "starting", ALWAYS, _accepted_target, _accepted,
       (persist_new, post("started")), why="R1: 202 or 409 attaches to the active job"),
    _r(StartAccepted, "cancelling", ~has_job, "cancelling", _job_arrived_while_cancelling,
       (mark_cancelled, clear_start_cancel, post("cancel-requested")),
       why="C1: cancel clicked while starting; the job mark replaces the project mark"),
    _r(StartFailed, "starting", retryable, SAME, _retry, why="R1 makes a repeated POST safe"),
    _r(StartFailed, "starting", ALWAYS, "failed", _error("could not start the export: ")),
    _r(StartFailed, "cancelling", ~has_job & retry_answer, SAME, _retry,
       why="C1: the lost POST may have created the job: ask again, without limit (the token "
           "makes it safe, R1), to learn it, then cancel"),
    _r(StartFailed, "cancelling", ~has_job, "cancelled", _cancel_before_job, (clear_start_cancel,),
       why="C1: the server refused the start: nothing was created that could be downloaded"),
    _r(Update, {"starting", "restoring"}, ALWAYS, SAME, _keep_early,
       why="news racing the 202 / the re-query is kept and applied after it"),
    # ---- cancel (C1, C2)
    _r(Cancel, {"queued", "running", "completed", "downloading", "restoring"}, has_job,
       "cancelling", _to_cancelling, (mark_cancelled, clear_persist, post("cancel-requested")),
       why="C1: local first, marks, clears C5, tells tabs; HTTP is the state's activity"),
    _r(Cancel, "starting", ALWAYS, "cancelling", _cancel_before_job, (mark_start_cancel,),
       why="C1: the job id comes with the 202; until then a mark naming the start token makes "
           "any tab that meets the job cancel it"),
    _r(CancelAnswered, "cancelling", has_job & outcome_is("ok"), "cancelled", _cancelled_answer,
       (post("cancelled"), clear_persist), why="C2: 200 -> cancelled"),
    _r(CancelAnswered, "cancelling", has_job & outcome_is("downloaded"), "downloaded",
       _cancel_downloaded, (post("downloaded"),), why="C2: 409 already downloaded is the truth"),
    _r(CancelAnswered, "cancelling", has_job & outcome_is("gone"), "cancelled", _cancel_gone,
       (clear_persist,), why="C2: the job no longer exists; nothing can be downloaded"),
    _r(CancelAnswered, "cancelling", has_job & outcome_is("refused"), "failed",
       _error("could not cancel: "), (clear_persist,), why="C2: a refusal is shown, never a download"),
    _r(CancelAnswered, "cancelling", has_job & outcome_is("retry"), SAME, _retry,
       why="C2: network error -> stay cancelling, retry with backoff"),
    # ---- job news (C3, R6)
    _r(Update, UPD_ACTIVE, for_project & newer & status_is("queued", "running"), job_status_target,
       _apply_live, (persist, post_progress_if_moved())),
    _r(Update, UPD_ACTIVE, for_project & newer & status_is("completed") & cancel_marked,
       "cancelling", _to_cancelling, (clear_persist,), why="C1: a cancel clicked in any tab wins"),
    _r(Update, UPD_ACTIVE | {"completed", "downloading"},
       for_project & newer & status_is("completed") & delivered, "downloaded",
       _downloaded_elsewhere, (persist,), why="C4: delivered by someone else"),
    _r(Update, UPD_ACTIVE, for_project & newer & status_is("completed"), "completed", _completed,
       (persist, post_if_server("completed")), why="C3: auto-download only if seen live (C8)"),
    _r(Update, "completed", for_project & newer & status_is("completed"), SAME, _apply_job, (persist,)),
    _r(Update, FOLLOWED, for_project & newer & status_is("cancelled"), "cancelled", _apply_job,
       (clear_persist, post_if_server("cancelled")), why="R2/C5"),
    _r(Update, "downloaded", for_project & newer & status_is("cancelled"), "cancelled", _cancelled_late,
       (clear_persist,), why="R2: a cancel that reached the server before the download request wins"),
    _r(Update, FOLLOWED, for_project & newer & status_is("failed", "expired"), "failed",
       _failed_update, (clear_persist, post_if_server("progress")), why="C5: failure clears"),
    _r(Update, ADOPTABLE, for_project & other_job & not_dismissed & ~auto_download_pending
       & status_is("queued", "running")
       & ~from_server, "restoring", _adopt_unverified,
       why="news relayed by a tab may be stale (its end not relayed): re-query before following"),
    _r(Update, ADOPTABLE, for_project & other_job & not_dismissed & ~auto_download_pending
       & status_is("queued", "running")
       & cancel_marked, "cancelling", _adopt, (clear_persist,),
       why="follow a job cancelled elsewhere: keep asking the server to cancel it"),
    _r(Update, ADOPTABLE, for_project & other_job & not_dismissed & ~auto_download_pending
       & status_is("queued", "running"),
       job_status_target, _adopt, (persist,), why="a tab that did not start it follows it (R6 order)"),
    # ---- polling errors (C7)
    _r(FetchFailed, {"queued", "running", "completed"},
       event_job & Guard("gone", lambda s, e: e.outcome == "gone"), "failed", _gone_failed,
       (clear_persist,)),
    _r(FetchFailed, "cancelling", event_job & Guard("gone", lambda s, e: e.outcome == "gone"),
       "cancelled", _cancel_gone, (clear_persist,)),
    # ---- cross-tab (C6)
    _r(Remote, {"queued", "running", "completed", "downloading", "restoring"},
       remote_for_us & kind_is("cancel-requested"), "cancelling", _to_cancelling, (clear_persist,),
       why="C1: a cancel in another tab stops downloads here too"),
    _r(Remote, {"queued", "running", "completed", "downloading"},
       remote_for_us & (kind_is("downloaded") | kind_is("download-claimed")), "downloaded",
       _downloaded_elsewhere, why="C4: another tab downloaded it"),
    _r(Remote, {"cancelled", "failed", "downloaded", "completed"}, remote_for_us & kind_is("dismissed"),
       "idle", _dismiss, why="dismiss is shared by all tabs (C5 record already cleared)"),
    # ---- download (C4)
    _r(AutoDownloadDue, "completed", event_job & auto_on & cancel_marked, "cancelling",
       _to_cancelling, (clear_persist,), why="C1"),
    _r(AutoDownloadDue, "completed", event_job & auto_on & download_marked, "downloaded",
       _downloaded_elsewhere, why="C4"),
    _r(AutoDownloadDue, "completed", event_job & auto_on, "downloading", _no_auto),
    _r(Download, "completed", event_job & cancel_marked, "cancelling", _to_cancelling,
       (clear_persist,), why="C1"),
    _r(Download, "completed", event_job & download_marked, "downloaded", _downloaded_elsewhere),
    _r(Download, "completed", event_job, "downloading", _no_auto, why="C8: the offered download"),
    _r(LockResult, "downloading", event_job & cancel_marked, "cancelling", _to_cancelling,
       (clear_persist,), why="C1: checked under the lock"),
    _r(LockResult, "downloading", event_job & download_marked, "downloaded", _downloaded_elsewhere,
       why="C4: checked under the lock"),
    _r(LockResult, "downloading", event_job & granted, "downloaded", _downloaded_here,
       (start_download, persist), why="C4: the mark is written before the download starts"),
    _r(LockResult, "downloading", event_job, "completed", _claimed_elsewhere,
       why="C4: another tab holds the lock"),
    # ---- dismiss
    _r(Dismiss, {"cancelled", "failed", "downloaded", "completed"}, ALWAYS, "idle", _dismiss,
       (clear_persist, post_about_previous("dismissed")), why="C5: dismiss clears at once"),
)

FOLLOW_UPS = (StartAccepted, Update)


def _find_rule(state: ExportState, event: Any) -> Optional[Rule]:
    for rule in RULES:
        if isinstance(event, rule.event) and state.status in rule.sources and rule.guard(state, event):
            return rule
    return None


def transition(state: ExportState, event: Any) -> tuple[ExportState, list]:
    """Apply ``event`` to ``state``: ``(new_state, actions)``. Pure; an event no rule accepts
    returns ``(state, [])`` (the very same state object)."""
    rule = _find_rule(state, event)
    if rule is None:
        return state, []
    target = rule.target(state, event) if callable(rule.target) else rule.target
    if target == SAME:
        target = state.status
    changes = rule.update(state, event) if rule.update is not None else {}
    new = replace(state, status=target, **changes)
    actions: list = []
    for build in rule.actions:
        actions.extend(build(state, new, event))
    # News kept while starting/restoring is applied once the job is known.
    if (new.early is not None and state.status in ("starting", "restoring")
            and new.status not in ("starting", "restoring")):
        early, new = new.early, replace(new, early=None)
        if new.job is not None and early.job_id == new.job.id:
            marks = getattr(event, "marks", Marks())
            newer_state, more = transition(new, Update(early, state.early_source, marks))
            new, actions = newer_state, actions + more
    return new, actions


# ------------------------------------------------------------------------ activities

ACTIVITIES: tuple[tuple[str, Guard, str], ...] = (
    ("restoring", ALWAYS, "fetch_job"),
    ("starting", ALWAYS, "start_request"),
    ("cancelling", ~has_job, "start_request"),
    ("cancelling", has_job, "cancel_request"),
    ("queued", ALWAYS, "poll"),
    ("running", ALWAYS, "poll"),
    ("cancelling", has_job, "poll"),
    ("completed", auto_on, "auto_download_timer"),
    ("downloading", ALWAYS, "download_lock"),
    ("downloaded", Guard("downloaded_here", lambda s, e: s.downloaded_here), "download_lock"),
)
"""(state, guard on the state, activity): what runs while the machine is in a state.
``poll`` runs only while the WebSocket is down (C7); ``download_lock`` stays held after a
download this tab made, so no other tab can even try until this one moves on."""


def activities(state: ExportState) -> frozenset[str]:
    """The activities that run in ``state`` (see ``ACTIVITIES``)."""
    return frozenset(act for st, guard, act in ACTIVITIES
                     if st == state.status and guard(state, None))


# ----------------------------------------------------------------------------- view


@dataclass(frozen=True)
class ExportView:
    """What the page shows, derived from the state (the hook's readable values)."""

    current_job: Optional[ExportJob]
    is_exporting: bool
    is_downloading: bool
    export_progress: float
    export_status: str
    completed_job_id: Optional[str]
    error_message: Optional[str]
    notice: Optional[str]
    can_download: bool
    can_cancel: bool
    can_dismiss: bool


def view(state: ExportState) -> ExportView:
    """Derive the readable values: ``export_progress`` is 0..100 (100 once completed),
    ``completed_job_id`` is set in completed/downloading/downloaded, ``can_download`` only
    for an offered (not auto) completed job."""
    job = state.job
    status = state.status
    if status in ("completed", "downloading", "downloaded"):
        progress = 100.0
    elif job is not None and status not in ("idle", "starting"):
        progress = max(0.0, min(100.0, float(job.progress)))
    else:
        progress = 0.0
    return ExportView(
        current_job=job,
        is_exporting=status in EXPORTING,
        is_downloading=status == "downloading",
        export_progress=progress,
        export_status=status,
        completed_job_id=job.id if job is not None and status in ("completed", "downloading", "downloaded") else None,
        error_message=state.error,
        notice=state.notice,
        can_download=status == "completed" and not state.auto_download,
        can_cancel=status in ("starting", "queued", "running", "completed", "downloading", "restoring"),
        can_dismiss=status in ("cancelled", "failed", "downloaded", "completed"),
    )


def describe_rules() -> str:
    """The rule table as text: one line per row (event, sources, guard, target, actions)."""
    lines = []
    for r in RULES:
        target = r.target if isinstance(r.target, str) else f"<{r.target.__doc__ or r.target.__name__}>"
        acts = ", ".join(a.__name__ for a in r.actions) or "-"
        lines.append(f"{r.event.__name__:16} {'|'.join(sorted(r.sources)):45} [{r.guard.name}] -> "
                     f"{target}; {acts}" + (f"  # {r.why}" if r.why else ""))
    return "\n".join(lines)
