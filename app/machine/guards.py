"""The rules' guards: named predicates ``(state, event) -> bool``, each defined once.

Combine them with ``&``, ``|`` and ``~``; a conjunction keeps its ``parts`` (the guards it
is made of), so a rule's guard can be read, printed and edited part by part.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from app.machine.events import SERVER_SOURCES, JobUpdate
from app.machine.state import ExportState, State

MAX_START_ATTEMPTS = 4
"""POST attempts before a start gives up (retrying is safe: the POST carries its
``start_token``, and R1 answers a repeated token with the job the first copy made).
While cancelling, the POST is retried without limit (C2-like): only its answer can
name the job that must be cancelled."""


DELIVERY_ASKS = 5
"""How often the tab that handed the file out asks the server whether it recorded the
download before it says the download did not complete (C9); a tab that follows another
tab's download asks once (``app.export_hook.timing.confirm_delay_ms`` says when)."""


def delivery_asks(handed_out_here: bool) -> int:
    return DELIVERY_ASKS if handed_out_here else 1


class Guard:
    """A named predicate ``(state, event) -> bool``."""

    def __init__(self, name: str, fn: Callable[[ExportState, Any], bool],
                 parts: Optional[tuple["Guard", ...]] = None) -> None:
        self.name = name
        self.fn = fn
        self.parts: tuple[Guard, ...] = parts or (self,)
        """The guards this one is the conjunction of (itself when it is no ``&``)."""

    def __call__(self, state: ExportState, event: Any) -> bool:
        return bool(self.fn(state, event))

    def __and__(self, other: "Guard") -> "Guard":
        return Guard(f"{self.name} & {other.name}", lambda s, e: self(s, e) and other(s, e),
                     self.parts + other.parts)

    def __or__(self, other: "Guard") -> "Guard":
        return Guard(f"({self.name} | {other.name})", lambda s, e: self(s, e) or other(s, e))

    def __invert__(self) -> "Guard":
        return Guard(f"~{self.name}", lambda s, e: not self(s, e))

    @property
    def names(self) -> tuple[str, ...]:
        """The names of ``parts``."""
        return tuple(part.name for part in self.parts)

    def __repr__(self) -> str:
        return self.name


def _news(event: Any) -> JobUpdate:
    return event.update


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


ALWAYS = Guard("always", lambda s, e: True)

# -- about job news (Update events)
for_project = Guard("for_project", lambda s, e: _news(e).project_id == s.project_id)
same_job = Guard("same_job", lambda s, e: s.job is not None and _news(e).job_id == s.job.id)
other_job = Guard("other_job", lambda s, e: s.job is None or _news(e).job_id != s.job.id)
newer = Guard("newer", lambda s, e: _is_newer(s, _news(e), e.source))
from_fetch = Guard("from_fetch", lambda s, e: e.source == "fetch")
from_server = Guard("from_server", lambda s, e: e.source in SERVER_SOURCES)
not_dismissed = Guard("not_dismissed", lambda s, e: _news(e).job_id not in s.dismissed)
download_recorded = Guard("download_recorded", lambda s, e: e.marks.downloaded
                           or (bool(_news(e).delivered) and e.marks.claimed))
"""This browser's download of the job is recorded: its mark, or the server's flag for a
download a tab of this browser claimed (C9). The flag alone may be another browser's."""


def status_is(*statuses: str) -> Guard:
    """The news names one of ``statuses`` (job statuses)."""
    return Guard(f"status {'|'.join(statuses)}", lambda s, e: _news(e).status in statuses)


# -- about the storage marks of the event's job
cancel_marked = Guard("cancel_marked", lambda s, e: e.marks.cancelled)
download_marked = Guard("download_marked", lambda s, e: e.marks.downloaded)
claim_marked = Guard("claim_marked", lambda s, e: e.marks.claimed)
undelivered_marked = Guard("undelivered_marked", lambda s, e: e.marks.undelivered)

# -- about the state
has_job = Guard("has_job", lambda s, e: s.job is not None)
adopting = Guard("adopting", lambda s, e: s.adopting)
auto_on = Guard("auto_on", lambda s, e: s.auto_download)
handed_out_here = Guard("handed_out_here", lambda s, e: s.handed_out_here)
auto_download_pending = Guard("auto_download_pending",
                              lambda s, e: s.status == State.COMPLETED and s.auto_download)

# -- about other events
event_job = Guard("event_job", lambda s, e: s.job is not None and e.job_id == s.job.id)
remote_for_us = Guard("remote_for_us", lambda s, e: e.project_id == s.project_id
                      and s.job is not None and e.job_id == s.job.id)
retry_answer = Guard("retry_answer", lambda s, e: e.retryable)
retryable = Guard("retryable", lambda s, e: e.retryable and s.attempt + 1 < MAX_START_ATTEMPTS)
asks_left = Guard("asks_left", lambda s, e: s.attempt + 1 < delivery_asks(s.handed_out_here))
granted = Guard("granted", lambda s, e: e.granted)
job_ended = Guard("job_ended", lambda s, e: e.job.status in ("cancelled", "failed", "expired"))


def outcome_is(*outcomes: str) -> Guard:
    """A ``CancelAnswered``/``FetchFailed`` with one of ``outcomes``."""
    return Guard(f"outcome {'|'.join(outcomes)}", lambda s, e: e.outcome in outcomes)


def kind_is(*kinds: str) -> Guard:
    """A ``Remote`` message of one of ``kinds``."""
    return Guard(f"kind {'|'.join(kinds)}", lambda s, e: e.kind in kinds)


gone = outcome_is("gone")
news_of_another_active_job = (for_project & other_job & not_dismissed & ~auto_download_pending
                              & status_is("queued", "running"))
"""News of a job this tab does not follow, still running, while no download of ours is
pending (F7): a tab that did not start it follows it."""
