"""The transition table: one ``Rule`` per row, read top to bottom.

A row reads: **on** an event of this type, **when** the machine is in one of these states,
if the **guard** holds, go **to** this state (a ``State``, ``SAME``, or a ``Target`` computed
from the event), apply the **update** (field changes) and **do** these actions, in order;
**why** names the contract rule (DESIGN.md's C1-C8, R1-R8) or the finding (F1-F8 of
``app/DECISIONS.md``) it serves. The first matching row wins; no matching row: the event is
ignored. ``describe_rules()`` prints the table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Union

from app.machine import changes as c
from app.machine.actions import (
    Do, clear_answered, clear_if_settled, clear_persist, clear_start_cancel, confirm_download, fail_download,
    mark_cancelled, mark_start_cancel, persist_if_foreign, persist_if_starter, persist_new, post, post_about_previous,
    post_if_server, post_progress_if_moved, start_download, warn,
)
from app.machine.changes import Target
from app.machine.events import (
    AutoDownloadDue, Cancel, CancelAnswered, DeliveryUnconfirmed, Dismiss, Download, FetchFailed, LockResult, Remote,
    Restore, Start, StartAccepted, StartFailed, StartRejected, Update,
)
from app.machine.guards import (
    ALWAYS, Guard, adopting, asks_left, auto_on, cancel_marked, claim_marked, download_marked, download_recorded,
    event_job, for_project, from_fetch, from_server, gone, granted, has_job, job_ended, kind_is, newer,
    news_of_another_active_job, outcome_is, remote_for_us, retry_answer, retryable, same_job, status_is,
    undelivered_marked,
)
from app.machine.state import (
    ACTIVE, ADOPTABLE, CANCELLABLE, DOWNLOADABLE, ENDED, FOLLOWED, HANDED_OUT, OFFERED, STATES, WAITING, State,
)

SAME = "<same>"
"""``to=SAME``: stay in the current state (fields may still change)."""


@dataclass(frozen=True)
class Rule:
    """One row of the table (see the module doc). ``when`` takes a state or a set of them."""

    on: type
    when: Union[State, Iterable[State]]
    guard: Guard = ALWAYS
    to: Union[State, str, Target] = SAME
    update: Optional[Callable[[Any, Any], dict[str, Any]]] = None
    do: tuple[Do, ...] = field(default=())
    why: str = ""

    def __post_init__(self) -> None:
        when = frozenset({self.when}) if isinstance(self.when, State) else frozenset(self.when)
        object.__setattr__(self, "when", when)
        object.__setattr__(self, "do", tuple(self.do))

    def label(self) -> str:
        """The row as one line of text."""
        target = f"<{self.to.label}>" if isinstance(self.to, Target) else str(self.to)
        actions = ", ".join(d.label for d in self.do) or "-"
        return (f"{self.on.__name__:16} {'|'.join(sorted(self.when)):45} [{self.guard.name}] -> "
                f"{target}; {actions}" + (f"  # {self.why}" if self.why else ""))


ANY = frozenset(STATES)
CANCEL_ON_MARK = "C1: a cancel clicked in any tab wins"

RULES: tuple[Rule, ...] = (
    # ---- restore (C8)
    Rule(on=Restore, when=State.IDLE, to=State.RESTORING, update=c.restore, why="C8: re-query before showing"),
    Rule(on=Update, when=State.RESTORING, guard=for_project & same_job & from_fetch, to=c.requeried_job,
         update=c.requeried, do=[clear_if_settled],
         why="C8: completed while closed -> offered, not auto-downloaded"),
    Rule(on=FetchFailed, when=State.RESTORING, guard=event_job & adopting & gone, to=State.IDLE, update=c.forgotten,
         why="a relayed job the server does not know: forget it quietly"),
    Rule(on=FetchFailed, when=State.RESTORING, guard=event_job & gone, to=State.IDLE, update=c.forgotten,
         do=[clear_persist, warn("persisted export no longer on the server")],
         why="C5/C8: a job the server forgot is dropped"),
    Rule(on=FetchFailed, when=State.RESTORING, guard=event_job, update=c.retry, why="C8: retry with backoff"),
    # ---- start (R1)
    Rule(on=Start, when=ADOPTABLE, to=State.STARTING, update=c.start),
    Rule(on=StartRejected, when=ANY, update=c.rejected, why="R8: invalid options never sent"),
    Rule(on=StartAccepted, when=State.STARTING, guard=job_ended, to=c.answered_job, update=c.accepted_ended,
         do=[clear_answered],
         why="R1: a repeated start (first answer lost) may find its job already over: shown, never kept, and "
             "cleared from storage where another tab kept it (C5; F8)"),
    Rule(on=StartAccepted, when=State.STARTING, to=c.answered_job, update=c.accepted, do=[persist_new, post("started")],
         why="R1: 202 or 409 attaches to the active job"),
    Rule(on=StartAccepted, when=State.CANCELLING, guard=~has_job, to=State.CANCELLING,
         update=c.job_arrived_while_cancelling, do=[mark_cancelled, clear_start_cancel, post("cancel-requested")],
         why="C1: cancel clicked while starting; the job mark replaces the start mark"),
    Rule(on=StartFailed, when=State.STARTING, guard=retryable, update=c.retry, why="R1 makes a repeated POST safe"),
    Rule(on=StartFailed, when=State.STARTING, to=State.FAILED, update=c.error("could not start the export: ")),
    Rule(on=StartFailed, when=State.CANCELLING, guard=~has_job & retry_answer, update=c.retry,
         why="C1: the lost POST may have created the job: ask again, without limit (the token makes it safe, "
             "R1), to learn it, then cancel"),
    Rule(on=StartFailed, when=State.CANCELLING, guard=~has_job, to=State.CANCELLED, update=c.cancel_before_job,
         do=[clear_start_cancel],
         why="C1: the server refused the start: nothing was created that could be downloaded"),
    Rule(on=Update, when=WAITING, update=c.keep_early,
         why="news racing the 202 / the re-query is kept and applied after it"),
    # ---- cancel (C1, C2)
    Rule(on=Cancel, when=CANCELLABLE, guard=has_job, to=State.CANCELLING, update=c.to_cancelling,
         do=[mark_cancelled, clear_persist, post("cancel-requested")],
         why="C1: local first, marks, clears C5, tells tabs; HTTP is the state's activity"),
    Rule(on=Cancel, when=State.STARTING, to=State.CANCELLING, update=c.cancel_before_job, do=[mark_start_cancel],
         why="C1: the job id comes with the 202; until then a mark naming the start token makes any tab that "
             "meets the job cancel it"),
    Rule(on=CancelAnswered, when=State.CANCELLING, guard=has_job & outcome_is("ok"), to=State.CANCELLED,
         update=c.cancel_confirmed, do=[post("cancelled"), clear_persist], why="C2: 200 -> cancelled"),
    Rule(on=CancelAnswered, when=State.CANCELLING, guard=has_job & outcome_is("downloaded"), to=State.DOWNLOADED,
         update=c.cancel_too_late, do=[post("downloaded")], why="C2: 409 already downloaded is the truth"),
    Rule(on=CancelAnswered, when=State.CANCELLING, guard=has_job & gone, to=State.CANCELLED, update=c.cancel_gone,
         do=[clear_persist], why="C2: the job no longer exists; nothing can be downloaded"),
    Rule(on=CancelAnswered, when=State.CANCELLING, guard=has_job & outcome_is("refused"), to=State.FAILED,
         update=c.error("could not cancel: "), do=[clear_persist], why="C2: a refusal is shown, never a download"),
    Rule(on=CancelAnswered, when=State.CANCELLING, guard=has_job & outcome_is("retry"), update=c.retry,
         why="C2: network error -> stay cancelling, retry with backoff"),
    # ---- job news (C3, R6)
    Rule(on=Update, when=ACTIVE, guard=for_project & newer & status_is("queued", "running"), to=c.job_status,
         update=c.apply_live, do=[persist_if_starter, post_progress_if_moved],
         why="issue 18: one tab writes the record, and never the progress (a reload re-queries the job, C8)"),
    Rule(on=Update, when=ACTIVE, guard=for_project & newer & status_is("completed") & cancel_marked,
         to=State.CANCELLING, update=c.to_cancelling, do=[clear_persist], why=CANCEL_ON_MARK),
    Rule(on=Update, when=ACTIVE | {State.COMPLETED, State.DOWNLOADING, State.DELIVERING, State.UNDELIVERED},
         guard=for_project & newer & status_is("completed") & download_marked, to=State.DOWNLOADED,
         update=c.confirmed, why="C9: a tab of this browser has the server's word already"),
    Rule(on=Update, when=ACTIVE | {State.COMPLETED, State.DOWNLOADING, State.DELIVERING, State.UNDELIVERED},
         guard=for_project & newer & status_is("completed") & download_recorded, to=State.DOWNLOADED,
         update=c.confirmed, do=[confirm_download],
         why="C9: the server recorded the download a tab of this browser handed out"),
    Rule(on=Update, when=ACTIVE, guard=for_project & newer & status_is("completed") & claim_marked,
         to=State.DELIVERING, update=c.delivering_elsewhere,
         why="C4: another tab of this browser is handing it out already"),
    Rule(on=Update, when=ACTIVE, guard=for_project & newer & status_is("completed") & undelivered_marked,
         to=State.UNDELIVERED, update=c.undelivered, why="C9: a download of it did not complete"),
    Rule(on=Update, when=ACTIVE, guard=for_project & newer & status_is("completed"), to=State.COMPLETED,
         update=c.completed, do=[persist_if_starter, post_if_server("completed")],
         why="C3: auto-download only if seen live (C8) and started in this browser (C10)"),
    Rule(on=Update, when=State.COMPLETED, guard=for_project & newer & status_is("completed"), update=c.apply_job),
    Rule(on=Update, when=FOLLOWED, guard=for_project & newer & status_is("cancelled"), to=State.CANCELLED,
         update=c.apply_job, do=[clear_persist, post_if_server("cancelled")], why="R2/C5"),
    Rule(on=Update, when=State.DOWNLOADED, guard=for_project & newer & status_is("cancelled"), to=State.CANCELLED,
         update=c.cancelled_late, do=[clear_persist],
         why="R2: a cancel that reached the server before the download request wins"),
    Rule(on=Update, when=FOLLOWED, guard=for_project & newer & status_is("failed", "expired"), to=State.FAILED,
         update=c.failed_news, do=[clear_persist, post_if_server("progress")], why="C5: failure clears"),
    Rule(on=Update, when=ADOPTABLE, guard=news_of_another_active_job & ~from_server, to=State.RESTORING,
         update=c.adopt_unverified,
         why="news relayed by a tab may be stale (its end not relayed): re-query before following"),
    Rule(on=Update, when=ADOPTABLE, guard=news_of_another_active_job & cancel_marked, to=State.CANCELLING,
         update=c.adopt, do=[clear_persist],
         why="follow a job cancelled elsewhere: keep asking the server to cancel it"),
    Rule(on=Update, when=ADOPTABLE, guard=news_of_another_active_job, to=c.job_status, update=c.adopt,
         do=[persist_if_foreign],
         why="a tab that did not start it follows it (R6 order)"),
    # ---- polling errors (C7)
    Rule(on=FetchFailed, when={State.QUEUED, State.RUNNING, State.COMPLETED, State.DELIVERING},
         guard=event_job & gone, to=State.FAILED, update=c.gone_failed, do=[clear_persist]),
    Rule(on=FetchFailed, when=State.CANCELLING, guard=event_job & gone, to=State.CANCELLED, update=c.cancel_gone,
         do=[clear_persist]),
    # ---- cross-tab (C6)
    Rule(on=Remote, when=CANCELLABLE, guard=remote_for_us & kind_is("cancel-requested"), to=State.CANCELLING,
         update=c.to_cancelling, do=[clear_persist], why="C1: a cancel in another tab stops downloads here too"),
    Rule(on=Remote, when=OFFERED, guard=remote_for_us & kind_is("download-claimed"), to=State.DELIVERING,
         update=c.delivering_elsewhere, why="C4: another tab handed it out; C9: its delivery is followed"),
    Rule(on=Remote, when=HANDED_OUT, guard=remote_for_us & kind_is("downloaded"), to=State.DOWNLOADED,
         update=c.downloaded_elsewhere, why="C9: another tab has the server's word"),
    Rule(on=Remote, when=HANDED_OUT, guard=remote_for_us & kind_is("download-failed"), to=State.UNDELIVERED,
         update=c.undelivered, why="C9: shown in every tab"),
    Rule(on=Remote, when=ENDED, guard=remote_for_us & kind_is("dismissed"), to=State.IDLE, update=c.dismiss,
         why="dismiss is shared by all tabs (C5 record already cleared)"),
    # ---- download: one door for the auto-download, the status panel and the history (C4)
    Rule(on=AutoDownloadDue, when=State.COMPLETED, guard=event_job & auto_on & cancel_marked, to=State.CANCELLING,
         update=c.to_cancelling, do=[clear_persist], why="C1"),
    Rule(on=AutoDownloadDue, when=State.COMPLETED, guard=event_job & auto_on & download_marked, to=State.DOWNLOADED,
         update=c.downloaded_elsewhere, why="C4"),
    Rule(on=AutoDownloadDue, when=State.COMPLETED, guard=event_job & auto_on & claim_marked, to=State.DELIVERING,
         update=c.delivering_elsewhere, why="C4"),
    Rule(on=AutoDownloadDue, when=State.COMPLETED, guard=event_job & auto_on & undelivered_marked,
         to=State.UNDELIVERED, update=c.undelivered, why="C9: a failed download is offered, never retried unasked"),
    Rule(on=AutoDownloadDue, when=State.COMPLETED, guard=event_job & auto_on, to=State.DOWNLOADING, update=c.no_auto),
    Rule(on=Download, when=DOWNLOADABLE, guard=event_job & cancel_marked, to=State.CANCELLING,
         update=c.to_cancelling, do=[clear_persist], why="C1"),
    Rule(on=Download, when=DOWNLOADABLE, guard=event_job & download_marked, to=State.DOWNLOADED,
         update=c.downloaded_elsewhere),
    Rule(on=Download, when=DOWNLOADABLE, guard=event_job & claim_marked, to=State.DELIVERING,
         update=c.delivering_elsewhere),
    Rule(on=Download, when=DOWNLOADABLE, guard=event_job, to=State.DOWNLOADING, update=c.no_auto,
         why="C8: the offered download; C9: again after one that did not complete"),
    Rule(on=LockResult, when=State.DOWNLOADING, guard=event_job & cancel_marked, to=State.CANCELLING,
         update=c.to_cancelling, do=[clear_persist], why="C1: checked under the lock"),
    Rule(on=LockResult, when=State.DOWNLOADING, guard=event_job & download_marked, to=State.DOWNLOADED,
         update=c.downloaded_elsewhere, why="C4: checked under the lock"),
    Rule(on=LockResult, when=State.DOWNLOADING, guard=event_job & claim_marked, to=State.DELIVERING,
         update=c.delivering_elsewhere, why="C4: checked under the lock"),
    Rule(on=LockResult, when=State.DOWNLOADING, guard=event_job & granted, to=State.DELIVERING,
         update=c.handed_out_here, do=[start_download],
         why="C4: the claim is written before the download starts; C9: the server's word is awaited"),
    Rule(on=LockResult, when=State.DOWNLOADING, guard=event_job, to=State.DELIVERING, update=c.delivering_elsewhere,
         why="C4: another tab holds the lock, so it is handing the file out: shown at once (issue 18)"),
    # ---- delivery (C9)
    Rule(on=DeliveryUnconfirmed, when=State.DELIVERING, guard=event_job & download_marked, to=State.DOWNLOADED,
         update=c.downloaded_elsewhere, why="C9: another tab had the server's word"),
    Rule(on=DeliveryUnconfirmed, when=State.DELIVERING, guard=event_job & asks_left, update=c.retry,
         why="C9: asked again later (the activity's delays)"),
    Rule(on=DeliveryUnconfirmed, when=State.DELIVERING, guard=event_job, to=State.UNDELIVERED, update=c.undelivered,
         do=[fail_download], why="C9: the server did not record the download in time: offered again, every tab"),
    # ---- dismiss
    Rule(on=Dismiss, when=ENDED, to=State.IDLE, update=c.dismiss, do=[clear_persist, post_about_previous("dismissed")],
         why="C5: dismiss clears at once"),
)


def describe_rules() -> str:
    """The rule table as text: one line per row (event, states, guard, target, actions)."""
    return "\n".join(rule.label() for rule in RULES)
