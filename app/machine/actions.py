"""What a transition asks the hook to do, in order: action records, and the builders a
rule lists in its ``do`` column (``Do``: a label for the printed table and a function of
the old state, the new state and the event that returns the records).

Actions are one-shot: post a cross-tab message (C6), write or clear the persisted record
(C5), write or clear a storage mark (C1, C4), hand the archive to the browser, warn.
Long-lived work (requests, timers, the lock) is an activity of a state instead
(``app.machine.engine.ACTIVITIES``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from app.identity import started_in
from app.machine.events import SERVER_SOURCES
from app.machine.state import ExportState, State
from app.models import ExportJob


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
class ClearMark:
    """Remove the storage mark ``kind`` of ``job_id``."""
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


Action = Union[Post, Persist, ClearPersist, WriteMark, ClearMark, MarkStartCancel, ClearStartCancel, StartDownload,
               Warn]


@dataclass(frozen=True)
class Do:
    """One entry of a rule's ``do`` column: ``build(old, new, event)`` returns the action
    records; ``label`` is what ``describe_rules`` prints."""

    label: str
    build: Callable[[ExportState, ExportState, Any], list]

    def __call__(self, old: ExportState, new: ExportState, event: Any) -> list:
        return self.build(old, new, event)


def post(kind: str) -> Do:
    return Do(f"post {kind}", lambda old, new, e: [Post(kind, new.job)] if new.job else [])


def post_about_previous(kind: str) -> Do:
    """Post about the job the state held before the event (dismiss forgets it)."""
    return Do(f"post {kind}", lambda old, new, e: [Post(kind, old.job)] if old.job else [])


def post_if_server(kind: str) -> Do:
    """Relay server news (socket/poll/fetch) to the other tabs; never relay relayed news."""
    return Do(f"post {kind} (server news)",
              lambda old, new, e: [Post(kind, new.job)] if new.job and e.source in SERVER_SOURCES else [])


post_progress_if_moved = Do(
    "post progress (status moved, server news)",
    lambda old, new, e: [Post("progress", new.job)]
    if new.job and e.source in SERVER_SOURCES and (old.job is None or old.job.status != new.job.status) else [])

persist = Do("persist", lambda old, new, e: [Persist(new.job)] if new.job else [])
persist_new = Do("persist (replace other)",
                 lambda old, new, e: [Persist(new.job, replace_other=True)] if new.job else [])
persist_if_starter = Do(
    "persist if this tab started it and its status moved",
    lambda old, new, e: [Persist(new.job)]
    if new.job and new.start_token is not None and new.job.start_token == new.start_token
    and (old.job is None or old.job.status != new.job.status) else [])
"""Only one tab writes the record as the job moves on: the one whose start made it (the
others' copies say nothing more, and every write wakes every other tab: with every tab
writing every progress event, storage traffic grew with the square of the tabs, issue
18). Progress itself is never written: a reload re-queries the job (C8)."""
persist_if_foreign = Do(
    "persist if no tab of this browser started it",
    lambda old, new, e: [Persist(new.job)]
    if new.job and not started_in(new.browser_id, new.job.start_token) else [])
"""A job another browser (or a script) started has no starting tab here to keep it for a
reload: the tabs that follow it write it (its own tab writes a job of this browser)."""
clear_if_settled = Do(
    "clear if cancelling/cancelled/failed",
    lambda old, new, e: [ClearPersist(new.job.id)]
    if new.job and new.status in (State.CANCELLING, State.CANCELLED, State.FAILED) else [])
clear_persist = Do("clear persisted", lambda old, new, e: [ClearPersist(old.job.id)] if old.job else [])
clear_answered = Do("clear persisted (the answered job)",
                    lambda old, new, e: [ClearPersist(new.job.id)] if new.job else [])
mark_cancelled = Do("mark cancelled", lambda old, new, e: [WriteMark("cancelled", new.job.id)] if new.job else [])
mark_start_cancel = Do("mark start cancelled", lambda old, new, e: [MarkStartCancel(old.start_token)])
clear_start_cancel = Do("clear start-cancelled mark", lambda old, new, e: [ClearStartCancel(old.start_token)])
start_download = Do("clear undelivered, mark claimed, post download-claimed, download",
                    lambda old, new, e: [ClearMark("undelivered", new.job.id), WriteMark("claimed", new.job.id),
                                         Post("download-claimed", new.job), StartDownload(new.job)])
confirm_download = Do("mark downloaded, post downloaded, persist",
                      lambda old, new, e: [WriteMark("downloaded", new.job.id), Post("downloaded", new.job),
                                           Persist(new.job)] if new.job else [])
fail_download = Do("clear claimed, mark undelivered, post download-failed",
                   lambda old, new, e: [ClearMark("claimed", new.job.id), WriteMark("undelivered", new.job.id),
                                        Post("download-failed", new.job)] if new.job else [])


def warn(text: str) -> Do:
    return Do(f"warn {text!r}", lambda old, new, e: [Warn(f"{text} (job {old.job_id})")])
