"""What a rule changes: its target when it depends on the event (``Target``), and the
field changes of the state (functions ``(state, event) -> dict``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from app.identity import started_in
from app.machine.events import CancelAnswered, JobUpdate, Marks, Restore, Start, StartAccepted, StartRejected, Update
from app.machine.state import ExportState, State
from app.models import ACTIVE_STATUSES

Changes = dict[str, Any]


@dataclass(frozen=True)
class Target:
    """A target computed from the state and the event; ``label`` is what the table prints."""

    label: str
    pick: Callable[[ExportState, Any], State]

    def __call__(self, state: ExportState, event: Any) -> State:
        return self.pick(state, event)


def state_for_job(status: str, delivered: bool, marks: Marks) -> State:
    """The state that shows a job with server ``status`` (and its ``delivered`` flag), given
    this browser's storage ``marks`` of that job: a download of this browser the server
    recorded is shown as such (C9: its mark, or the flag for a download a tab here
    claimed); else a cancel clicked anywhere wins (C1); else a download a tab here handed
    out is followed until the server's word, and one the server never saw is offered again.
    The flag alone may be another browser's download: the job is offered then (C10)."""
    if status in ACTIVE_STATUSES:
        return State.CANCELLING if marks.cancelled else State(status)
    if status == "completed":
        if marks.downloaded or (delivered and marks.claimed):
            return State.DOWNLOADED
        if marks.cancelled:
            return State.CANCELLING
        if marks.claimed:
            return State.DELIVERING
        return State.UNDELIVERED if marks.undelivered else State.COMPLETED
    return State.CANCELLED if status == "cancelled" else State.FAILED


def ended_message(status: str, message: str) -> str:
    """What a failed or expired job says: its own message, else a default."""
    return message or ("the export expired" if status == "expired" else "the export failed")


def _news(event: Any) -> JobUpdate:
    return event.update


def _stale_adoption(s: ExportState, e: Any) -> bool:
    return s.adopting and _news(e).status not in ACTIVE_STATUSES | {"completed"}


job_status = Target("status of the job", lambda s, e: State(_news(e).status))
answered_job = Target("state of the answered job",
                      lambda s, e: state_for_job(e.job.status, e.job.delivered, e.marks))
requeried_job = Target(
    "state of the re-queried job (C8)",
    # Stale news made us follow a job that is over: forget it.
    lambda s, e: State.IDLE if _stale_adoption(s, e)
    else state_for_job(_news(e).status, bool(_news(e).delivered), e.marks))


# ------------------------------------------------------------------- job news


def apply_job(s: ExportState, e: Any) -> Changes:
    return {"job": _news(e).to_job(s.job)}


def apply_live(s: ExportState, e: Any) -> Changes:
    return {**apply_job(s, e), "live": True, "notice": None}


def adopt(s: ExportState, e: Any) -> Changes:
    return {"job": _news(e).to_job(None), "live": True, "error": None, "notice": None,
            "auto_download": False, "handed_out_here": False, "attempt": 0, "early": None,
            "adopting": False}


def adopt_unverified(s: ExportState, e: Any) -> Changes:
    return {**adopt(s, e), "live": False, "adopting": True}


def completed(s: ExportState, e: Any) -> Changes:
    """C8, C10: downloaded unasked only when this tab saw it run and its browser started it."""
    job = _news(e).to_job(s.job)
    return {"job": job, "auto_download": s.live and started_in(s.browser_id, job.start_token)}


def failed_news(s: ExportState, e: Any) -> Changes:
    u = _news(e)
    return {**apply_job(s, e), "error": ended_message(u.status, u.message or ""), "auto_download": False}


def cancelled_late(s: ExportState, e: Any) -> Changes:
    return {**apply_job(s, e), "handed_out_here": False,
            "notice": "cancelled before the download reached the server"}


def _handed_out(s: ExportState, e: Any, delivered: bool) -> Changes:
    """The job as another tab's word says it is: completed (its seq is unknown), and
    ``delivered`` when the server has recorded the download."""
    if isinstance(e, Update):
        return apply_job(s, e)
    if s.job is None:
        return {}
    done = {"status": "completed", "progress": 100.0, **({"delivered": True} if delivered else {})}
    return {"job": s.job.model_copy(update=done)}


def downloaded_elsewhere(s: ExportState, e: Any) -> Changes:
    return {**_handed_out(s, e, True), "handed_out_here": False, "auto_download": False,
            "notice": "downloaded in another tab"}


def delivering_elsewhere(s: ExportState, e: Any) -> Changes:
    """Another tab of this browser handed the file out (C4): follow its delivery (C9)."""
    return {**_handed_out(s, e, False), "handed_out_here": False, "auto_download": False, "attempt": 0,
            "notice": "another tab is downloading this export"}


def undelivered(s: ExportState, e: Any) -> Changes:
    """C9: the server has not recorded the download: offered again."""
    return {**_handed_out(s, e, False), "handed_out_here": False, "auto_download": False, "attempt": 0,
            "notice": None}


def confirmed(s: ExportState, e: Any) -> Changes:
    """C9: the server recorded the download this tab (or another of this browser) made."""
    return {**apply_job(s, e), "auto_download": False,
            "notice": None if s.handed_out_here else "downloaded in another tab"}


def keep_early(s: ExportState, e: Any) -> Changes:
    u = _news(e)
    if u.project_id != s.project_id:
        return {}
    if s.status == State.RESTORING and (s.job is None or u.job_id != s.job.id):
        return {}
    if s.early is not None and s.early.job_id == u.job_id and s.early.seq >= u.seq:
        return {}
    return {"early": u, "early_source": e.source}


# ------------------------------------------------------------------ restore (C8)


def restore(s: ExportState, e: Restore) -> Changes:
    return {"job": e.job, "attempt": 0, "live": False, "error": None, "notice": None, "adopting": False,
            "early": None, "auto_download": False, "handed_out_here": False}


def requeried(s: ExportState, e: Any) -> Changes:
    u = _news(e)
    if _stale_adoption(s, e):
        return {"job": None, "attempt": 0, "adopting": False, "live": False, "early": None}
    changes: Changes = {"job": u.to_job(s.job), "attempt": 0, "live": u.status in ACTIVE_STATUSES,
                        "auto_download": False, "adopting": False}
    if u.status in ("failed", "expired"):
        changes["error"] = ended_message(u.status, u.message or "")
    return changes


def forgotten(s: ExportState, e: Any) -> Changes:
    return {"job": None, "attempt": 0, "early": None, "notice": "the previous export is no longer available"}


def gone_failed(s: ExportState, e: Any) -> Changes:
    return {"error": "the export no longer exists on the server", "auto_download": False}


# -------------------------------------------------------------------- start (R1)


def start(s: ExportState, e: Start) -> Changes:
    return {"job": None, "options": e.options, "error": None, "notice": None, "live": False,
            "attempt": 0, "early": None, "auto_download": False, "handed_out_here": False,
            "start_token": e.start_token}


def rejected(s: ExportState, e: StartRejected) -> Changes:
    return {"error": e.message}


def accepted(s: ExportState, e: StartAccepted) -> Changes:
    # A repeated start (its first answer lost) may find its job already completed: the
    # user is waiting for that very file, so it downloads as if the completion was seen live.
    return {"job": e.job, "live": True, "attempt": 0, "options": None,
            "auto_download": e.job.status == "completed",
            "notice": "attached to the export already running" if e.conflict else None}


def accepted_ended(s: ExportState, e: StartAccepted) -> Changes:
    error = None if e.job.status == "cancelled" else ended_message(e.job.status, e.job.message)
    return {**accepted(s, e), "auto_download": False, "error": error}


def retry(s: ExportState, e: Any) -> Changes:
    return {"attempt": s.attempt + 1}


def error(prefix: str) -> Callable[[ExportState, Any], Changes]:
    """The event's message, after ``prefix``, as the state's error."""
    def changes(s: ExportState, e: Any) -> Changes:
        return {"error": f"{prefix}{getattr(e, 'message', '') or 'unknown error'}", "auto_download": False}
    return changes


# ------------------------------------------------------------------- cancel (C1, C2)


def to_cancelling(s: ExportState, e: Any) -> Changes:
    return {"attempt": 0, "auto_download": False, "error": None, "notice": None}


def cancel_before_job(s: ExportState, e: Any) -> Changes:
    # Keep ``attempt``: the start request (still needed to learn the job id) must not restart.
    return {"auto_download": False, "error": None, "notice": None}


def job_arrived_while_cancelling(s: ExportState, e: StartAccepted) -> Changes:
    return {"job": e.job, "attempt": 0, "options": None}


def _answered_job(s: ExportState, e: CancelAnswered) -> Any:
    return e.job if e.job is not None and s.job is not None and e.job.id == s.job.id else s.job


def cancel_confirmed(s: ExportState, e: CancelAnswered) -> Changes:
    job = _answered_job(s, e)
    if job is not None and job.status != "cancelled":
        job = job.model_copy(update={"status": "cancelled"})
    return {"job": job, "attempt": 0, "notice": None}


def cancel_too_late(s: ExportState, e: CancelAnswered) -> Changes:
    return {"job": _answered_job(s, e), "attempt": 0, "handed_out_here": False,
            "notice": e.message or "already downloaded"}


def cancel_gone(s: ExportState, e: Any) -> Changes:
    return {"attempt": 0, "notice": "the export no longer exists on the server"}


# ------------------------------------------------------------------ download (C4)


def no_auto(s: ExportState, e: Any) -> Changes:
    return {"auto_download": False}


def handed_out_here(s: ExportState, e: Any) -> Changes:
    return {"handed_out_here": True, "auto_download": False, "attempt": 0, "notice": None}


def dismiss(s: ExportState, e: Any) -> Changes:
    dismissed = s.dismissed | {s.job.id} if s.job is not None else s.dismissed
    return {"job": None, "error": None, "notice": None, "auto_download": False,
            "handed_out_here": False, "live": False, "attempt": 0, "early": None,
            "dismissed": dismissed}
