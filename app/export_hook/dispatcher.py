"""``Dispatcher``: events in, transitions, actions out (the imperative half of the hook).

``dispatch(event)`` queues the event and, unless one is being processed, works through the
queue (run to completion: events that arrive meanwhile wait their turn). Per event:

1. the storage marks of the event's job are read into it (a start-cancelled mark that
   names the job's start token becomes the job's own cancelled mark first, C1);
2. ``transition`` gives the new state and the actions;
3. inside one store batch the state is written and the actions run in order (cross-tab
   post, storage writes, download), so the component re-renders once, after them, and the
   effects of the activities that changed restart after that (C1: the cancel click's state,
   marks and message all exist before the cancel request does).
"""
from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Callable, Optional

from app import crosstab, persistence
from app.machine import (
    ClearMark, ClearPersist, ClearStartCancel, ExportState, MarkStartCancel, Marks, Persist, Post, StartDownload, Warn,
    WriteMark, event_job_id, event_start_token, transition,
)
from app.models import ExportJob
from app.ports import Ports
from app.routes import download_path
from app.store import batch, report_error


def export_filename(job: ExportJob) -> str:
    """The name the page asks the browser to save the archive under."""
    return f"cellhub-project-{job.project_id}-export-{job.id}.zip"


class Dispatcher:
    """See the module doc. ``state`` is the latest state (also between renders);
    ``on_settled(state)`` runs after each event that changed something."""

    def __init__(self, project_id: int, ports: Ports, state_ref: Any, set_state: Callable[[ExportState], None]) -> None:
        self.project_id = project_id
        self.ports = ports
        self._state_ref = state_ref
        self._set_state = set_state
        self._queue: deque = deque()
        self._busy = False
        self.alive = True
        self.on_settled: Callable[[ExportState], None] = lambda state: None

    @property
    def state(self) -> ExportState:
        return self._state_ref.current

    def dispatch(self, event: Any) -> None:
        if not self.alive:
            return
        self._queue.append(event)
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue and self.alive:
                self._process(self._queue.popleft())
        finally:
            self._busy = False

    def stop(self) -> None:
        """Unmount: drop what is queued and every later event."""
        self.alive = False
        self._queue.clear()

    def _process(self, event: Any) -> None:
        try:
            event = self._with_marks(event)
            old = self._state_ref.current
            new, actions = transition(old, event)
        except Exception as exc:
            report_error(exc, f"export transition {type(event).__name__}")
            return
        if new is old and not actions:
            return
        self._state_ref.current = new
        with batch():
            self._set_state(new)
            for action in actions:
                try:
                    self.execute(action)
                except Exception as exc:
                    report_error(exc, f"export action {type(action).__name__}")
        self.on_settled(new)

    def _with_marks(self, event: Any) -> Any:
        job_id = event_job_id(event) if hasattr(event, "marks") else None
        if job_id is None:
            return event
        token = event_start_token(event)
        job = self.state.job
        if token is None and job is not None and job.id == job_id:
            token = job.start_token  # the event does not say; the followed job does
        return replace(event, marks=self.marks(job_id, token))

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
        elif isinstance(action, ClearMark):
            persistence.clear_mark(p.storage, action.kind, action.job_id)
        elif isinstance(action, MarkStartCancel):
            if action.start_token is not None:
                persistence.write_start_cancel(p.storage, action.start_token, now, p.tab_id)
        elif isinstance(action, ClearStartCancel):
            if action.start_token is not None:
                persistence.clear_start_cancel(p.storage, action.start_token)
        elif isinstance(action, StartDownload):
            p.downloader.download(download_path(action.job.id), export_filename(action.job))
        elif isinstance(action, Warn):
            p.log.warn(action.message)
        else:
            raise TypeError(f"unknown action {action!r}")
