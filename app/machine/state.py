"""The machine's states (``State``) and the whole state of one tab's export (``ExportState``).

States: ``idle``; ``restoring`` (a persisted job is being re-queried, C8); ``starting``
(the start POST in flight); ``queued``, ``running``; ``cancelling`` (C1: local, before any
answer); ``cancelled``; ``completed`` (auto-download pending when ``auto_download``, else
offered with a Download button); ``downloading`` (asking for the download lock);
``delivering`` (the browser was handed the file, here or in another tab of this browser,
and the server's word on its delivery is awaited, C9); ``downloaded`` (the server recorded
the delivery); ``undelivered`` (it did not within the bound: "the download did not
complete", offered again); ``failed``. The groups below name the sets of states the rules,
the activities and the view speak of, once.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Optional

from app.machine.events import JobUpdate
from app.models import ExportJob, ExportOptions


class State(StrEnum):
    """A machine state; equal to (and stored as) its lower-case name."""

    IDLE = "idle"
    RESTORING = "restoring"
    STARTING = "starting"
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    DOWNLOADING = "downloading"
    DELIVERING = "delivering"
    DOWNLOADED = "downloaded"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


STATES: tuple[State, ...] = tuple(State)
ACTIVE = frozenset({State.QUEUED, State.RUNNING})
"""The job runs on the server and this tab follows it."""
WAITING = frozenset({State.STARTING, State.RESTORING})
"""The job id (or its state) is not known yet: news that arrives is kept for later."""
ADOPTABLE = frozenset({State.IDLE, State.CANCELLED, State.DOWNLOADED, State.FAILED, State.COMPLETED,
                       State.UNDELIVERED})
"""No job of ours is in flight: Export may be clicked, news of another job is followed."""
FOLLOWED = frozenset({State.QUEUED, State.RUNNING, State.COMPLETED, State.DOWNLOADING, State.CANCELLING,
                      State.DELIVERING, State.UNDELIVERED})
"""A job is followed: its end (cancelled, failed) is applied."""
OFFERED = frozenset({State.QUEUED, State.RUNNING, State.COMPLETED, State.DOWNLOADING, State.UNDELIVERED})
"""A tab of this browser claiming the download (C4) makes these follow its delivery."""
HANDED_OUT = OFFERED | {State.DELIVERING}
"""Another tab's confirmed download (or its failure) ends ours."""
CANCELLABLE = frozenset({State.RESTORING, State.QUEUED, State.RUNNING, State.COMPLETED, State.DOWNLOADING,
                         State.DELIVERING, State.UNDELIVERED})
"""A Cancel click (here or in another tab) of the known job moves to ``cancelling``."""
DOWNLOADABLE = frozenset({State.COMPLETED, State.UNDELIVERED})
"""A Download click of the job goes through the lock (C4)."""
ENDED = frozenset({State.CANCELLED, State.FAILED, State.DOWNLOADED, State.COMPLETED, State.UNDELIVERED})
"""The export is over for this tab: it may be dismissed."""
EXPORTING = frozenset({State.STARTING, State.QUEUED, State.RUNNING, State.CANCELLING})
POLLABLE = frozenset({State.QUEUED, State.RUNNING, State.CANCELLING})
BUSY = frozenset({State.STARTING, State.CANCELLING, State.DOWNLOADING, State.DELIVERING, State.RESTORING})
"""A request or the lock decides what comes next; no new export may start meanwhile."""
FINISHED = frozenset({State.COMPLETED, State.DOWNLOADING, State.DELIVERING, State.DOWNLOADED, State.UNDELIVERED})
"""The archive exists (or was delivered): ``completed_job_id`` names it."""


@dataclass(frozen=True)
class ExportState:
    """The machine's whole state (one per tab and project)."""

    project_id: int
    status: State = State.IDLE
    job: Optional[ExportJob] = None
    error: Optional[str] = None
    notice: Optional[str] = None
    auto_download: bool = False
    live: bool = False
    """This tab saw the job queued or running (a completion then downloads unasked, C8)."""
    attempt: int = 0
    """Failed tries of the state's request so far (its retry waits ``retry_delay_ms``)."""
    handed_out_here: bool = False
    """This tab handed the file to the browser (it holds the download lock meanwhile)."""
    options: Optional[ExportOptions] = None
    early: Optional[JobUpdate] = None
    """News of the job that arrived while ``WAITING``, applied once the state is known."""
    early_source: str = "socket"
    adopting: bool = False
    """Following a job other tabs relayed: re-queried before it is shown (it may be stale)."""
    dismissed: frozenset[str] = frozenset()
    start_token: Optional[str] = None
    """The token of this tab's last start request (sent with the POST, R1)."""
    browser_id: Optional[str] = None
    """This tab's browser (``app.identity``): only jobs its browser started download unasked."""

    @property
    def job_id(self) -> Optional[str]:
        return self.job.id if self.job is not None else None


def initial_state(project_id: int, browser_id: Optional[str] = None) -> ExportState:
    return ExportState(project_id=project_id, browser_id=browser_id)
