"""What the machine hears: news about a job (``JobUpdate``), the storage marks read for
the event's job (``Marks``) and the events themselves, one frozen dataclass each.

The hook reads, just before each event is processed, whether storage holds a "cancel
requested" and a "downloaded" mark for the event's job (``event_job_id``); the machine uses
them so that a cancel clicked in any tab, or a download made by any tab, wins over messages
still on their way (C1, C4). A cancel clicked before the 202 names the start instead (its
``start_token``, kept by the server on the job, R1; ``event_start_token``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from app.models import ExportEvent, ExportJob, ExportOptions

SERVER_SOURCES = frozenset({"socket", "poll", "fetch", "answer"})
"""Where an ``Update`` came from: the server (these), or another tab (``channel``, ``storage``)."""


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

    @staticmethod
    def from_event(event: ExportEvent) -> "JobUpdate":
        return JobUpdate(event.job_id, event.project_id, event.seq, event.status, event.progress,
                         event.stage, event.message, start_token=event.start_token)

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
    """What this browser's storage says about the event's job: a tab asked to cancel it
    (also: a tab clicked cancel while the start request that made it was unanswered); a tab
    handed it to the browser (``claimed``, C4); the server recorded that download
    (``downloaded``, C9); the download did not reach the server in time (``undelivered``)."""

    cancelled: bool = False
    downloaded: bool = False
    claimed: bool = False
    undelivered: bool = False


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
    """News about a job from ``source`` (``SERVER_SOURCES``, ``channel`` or ``storage``)."""
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
    ``download-claimed``, ``downloaded``, ``download-failed`` or ``dismissed``."""
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
class DeliveryUnconfirmed:
    """The server had not recorded the download of ``job_id`` when this tab asked (ask
    number ``attempt`` of the state, C9)."""
    job_id: str
    marks: Marks = Marks()


@dataclass(frozen=True)
class Dismiss:
    """The user dismissed the finished export."""


Event = Union[Restore, Start, StartRejected, StartAccepted, StartFailed, Cancel, CancelAnswered,
              Update, FetchFailed, Remote, AutoDownloadDue, Download, LockResult, DeliveryUnconfirmed, Dismiss]


def event_job_id(event: Any) -> Optional[str]:
    """The job an event is about (whose storage marks the hook reads), if any."""
    if isinstance(event, (StartAccepted, Restore)):
        return event.job.id
    if isinstance(event, Update):
        return event.update.job_id
    if isinstance(event, (Remote, AutoDownloadDue, Download, LockResult, FetchFailed, DeliveryUnconfirmed)):
        return event.job_id
    return None


def event_start_token(event: Any) -> Optional[str]:
    """The start token an event carries about its job, if any."""
    if isinstance(event, (StartAccepted, Restore)):
        return event.job.start_token
    if isinstance(event, Update):
        update = event.update
        return update.job.start_token if update.job is not None else update.start_token
    return None
