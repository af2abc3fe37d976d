"""What the page shows, derived from the machine state (``view``): the hook's readable values.

The page reads these and nothing else of the machine, so no view code names a group of
states of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from app.machine.state import BUSY, DOWNLOADABLE, ENDED, EXPORTING, FINISHED, ExportState, State
from app.models import ExportJob

CANCEL_SHOWN = frozenset({State.STARTING, State.QUEUED, State.RUNNING, State.COMPLETED, State.DOWNLOADING,
                          State.DELIVERING, State.UNDELIVERED, State.RESTORING})
HISTORY_PHASES = {State.QUEUED: "active", State.RUNNING: "active", State.COMPLETED: "completed",
                  State.UNDELIVERED: "completed", State.DOWNLOADED: "downloaded", State.CANCELLED: "cancelled",
                  State.FAILED: "failed"}


@dataclass(frozen=True)
class ExportView:
    """The readable values of one state (see ``view``)."""

    current_job: Optional[ExportJob]
    is_exporting: bool
    is_downloading: bool
    export_progress: float
    export_status: State
    completed_job_id: Optional[str]
    error_message: Optional[str]
    notice: Optional[str]
    can_download: bool
    can_cancel: bool
    can_dismiss: bool
    busy: bool
    shows_progress: bool
    in_flight: bool
    history_phase: Optional[str]


def download_door(state: ExportState) -> Optional[str]:
    """How the history list lets the user download the export ``state`` follows (C4, one
    door to the file): ``hook`` while it is completed and not downloaded here (also while
    its auto-download is pending, and after a download that did not complete): a click goes
    through the hook (the lock, the marks, the server's word), like the auto-download and the
    status panel's button; ``again`` once the server recorded this browser's download (a
    plain link: a deliberate second copy); None while it runs or is being handed out."""
    if state.job is None:
        return None
    if state.status in DOWNLOADABLE:
        return "hook"
    return "again" if state.status == State.DOWNLOADED else None


def view(state: ExportState) -> ExportView:
    """The readable values of ``state``:

    - ``export_progress`` 0..100 (100 once completed); ``export_status`` the machine state;
    - ``is_exporting``: an export is under way here (starting, queued, running, cancelling);
    - ``completed_job_id``: the archive's job once it is completed (``FINISHED``);
    - ``can_download``: a completed job offered with a Download button (not auto, C8), or
      one whose download did not complete (C9);
      ``can_cancel``/``can_dismiss``: whether the page shows those buttons;
    - ``busy``: a request or the lock decides what comes next (no new export meanwhile);
    - ``shows_progress``: the progress block is shown (any state but idle);
      ``in_flight``: its live details are (stage, elapsed time: the job is not over);
    - ``history_phase``: how the history list would show the export now (``active``,
      ``completed``, ``downloaded``, ``cancelled``, ``failed``), None while that is in the
      balance (a refresh of the list is due each time it changes).
    """
    job = state.job
    status = state.status
    if status in FINISHED:
        progress = 100.0
    elif job is not None and status not in (State.IDLE, State.STARTING):
        progress = max(0.0, min(100.0, float(job.progress)))
    else:
        progress = 0.0
    return ExportView(
        current_job=job,
        is_exporting=status in EXPORTING,
        is_downloading=status == State.DOWNLOADING,
        export_progress=progress,
        export_status=status,
        completed_job_id=job.id if job is not None and status in FINISHED else None,
        error_message=state.error,
        notice=state.notice,
        can_download=status in DOWNLOADABLE and not (status == State.COMPLETED and state.auto_download),
        can_cancel=status in CANCEL_SHOWN,
        can_dismiss=status in ENDED,
        busy=status in BUSY,
        shows_progress=status != State.IDLE,
        in_flight=status in EXPORTING or status == State.RESTORING,
        history_phase=HISTORY_PHASES.get(status),
    )
