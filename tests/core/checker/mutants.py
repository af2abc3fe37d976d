"""The defects of the original React hook, put back one at a time by monkeypatching the
product (``app.machine.rules.RULES``, ``app.machine.engine.ACTIVITIES``, the hook's
``activities.ACTIVITY_EFFECTS`` and the ``transition`` its dispatcher calls, all looked up at
call time) in a test. Nothing in ``app/`` knows about them.

Each ``Mutant`` names the React defect, says how it is transposed to this design, and
carries the small scenario and depth the checker searches to catch it and the invariant
expected to fire. Where this design has two layers against one defect, the single-layer
mutant is listed too (``masked_by`` says which layer still holds), and the test shows
the same search finds nothing; its ``full`` mutant removes both layers and is caught.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

import pytest

from app.export_hook import activities as activity_table
from app.export_hook import dispatcher
from app import persistence
from app.machine import actions, changes, display, engine, rules
from app.machine.events import AutoDownloadDue, Cancel, DeliveryUnconfirmed, Download, LockResult, Update
from app.machine.guards import (
    Guard, cancel_marked, claim_marked, download_marked, download_recorded, for_project, granted, newer, status_is,
)
from app.machine.rules import SAME, Rule
from app.machine.actions import ClearPersist
from app.machine.state import ACTIVE, State

from .scenarios import (
    ONE_COMPLETED, ONE_COMPLETED_CLICKED, ONE_RUNNING, ONE_RUNNING_COMPLETES, ONE_RUNNING_FAILS,
    ONE_COMPLETED_DOWNLOAD_FAILS, ONE_RUNNING_POLLING, ONE_RUNNING_PROGRESS, TWO_BROWSERS_COMPLETED_B1_POLLING,
    TWO_BROWSERS_COMPLETES, TWO_COMPLETING, TWO_COMPLETING_CANCEL, TWO_COMPLETING_FALLBACK, Search,
)

Patch = Callable[[pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Mutant:
    """``key``: K1..K19 (app/DECISIONS.md, "Checker"); ``name``: short id; ``defect``: the React hook's defect; ``how``: what the patch
    changes here; ``patch(monkeypatch)``; ``search``: the bounded search that must
    catch it; ``expect``: the invariant code expected first; ``masked_by``: for a mutant
    another layer still stops (the search must find nothing), that layer."""

    key: str
    name: str
    defect: str
    how: str
    patch: Patch
    search: Search
    expect: Optional[str]
    masked_by: str = ""
    react: bool = True
    """False for the checker's own fault injections (I4, I6), not defects of the React hook."""


# ----------------------------------------------------------------------- rule editing

def _drop(table: tuple[Rule, ...], event: type, guard: Guard) -> tuple[Rule, ...]:
    """``table`` without the rows for ``event`` whose guard has the conjunct ``guard``."""
    out = tuple(r for r in table if not (r.on is event and guard.name in r.guard.names))
    if len(out) == len(table):
        raise AssertionError(f"no {event.__name__} row with {guard.name!r}: the mutant no longer applies")
    return out


def _set_rules(mp: pytest.MonkeyPatch, table: tuple[Rule, ...]) -> None:
    mp.setattr(rules, "RULES", table)


def _change_activity(mp: pytest.MonkeyPatch, name: str, **change: Any) -> None:
    """Replace fields (``start``, ``deps``) of the hook's activity effect ``name``."""
    table = activity_table.ACTIVITY_EFFECTS
    if name not in [a.name for a in table]:
        raise AssertionError(f"no activity effect {name!r}: the mutant no longer applies")
    mp.setattr(activity_table, "ACTIVITY_EFFECTS",
               tuple(replace(a, **change) if a.name == name else a for a in table))


# --------------------------------------------------------------------------- patches

def cancel_keeps_completed(mp: pytest.MonkeyPatch) -> None:
    """Cancel of a completed/downloading job keeps the state (its completed_job_id, the
    armed auto-download, the lock request); it still marks, clears C5 and tells tabs."""
    table = list(rules.RULES)
    i = next(i for i, r in enumerate(table) if r.on is Cancel and State.COMPLETED in r.when)
    row = table[i]
    kept = {State.COMPLETED, State.DOWNLOADING}
    keep = Rule(on=Cancel, when=kept, guard=row.guard, to=SAME, do=row.do, why="MUTANT")
    table[i:i + 1] = [keep, replace(row, when=row.when - kept)]
    _set_rules(mp, tuple(table))


def auto_download_no_cancel_check(mp: pytest.MonkeyPatch) -> None:
    """The auto-download timer's event ignores the cancel mark."""
    _set_rules(mp, _drop(rules.RULES, AutoDownloadDue, cancel_marked))


def auto_download_path_no_cancel_check(mp: pytest.MonkeyPatch) -> None:
    """Neither the auto-download timer's event nor the decision under the lock checks the
    cancel marks."""
    table = _drop(rules.RULES, AutoDownloadDue, cancel_marked)
    _set_rules(mp, _drop(table, LockResult, cancel_marked))


def auto_download_deps_without_state(mp: pytest.MonkeyPatch) -> None:
    """The auto-download effect's deps hold the job id only (React: ``[completedJobId]``
    without ``currentJob``): it never re-runs when the job's state changes."""
    _change_activity(mp, "auto_download", deps=lambda on, scene: (scene.job_id,))


def _completion_without_guard(source: str) -> Patch:
    def patch(mp: pytest.MonkeyPatch) -> None:
        from_source = Guard(f"from_{source}", lambda s, e: e.source == source)
        completed = for_project & newer & status_is("completed")
        table = []
        for r in rules.RULES:
            if r.on is Update and {cancel_marked.name, status_is("completed").name} <= set(r.guard.names):
                r = replace(r, guard=r.guard & ~from_source)  # the mark no longer stops this source
            table.append(r)
        row = Rule(on=Update, when=ACTIVE | {State.CANCELLING, State.CANCELLED}, guard=completed & from_source,
                   to=State.COMPLETED, update=changes.completed, do=[actions.persist], why="MUTANT")
        _set_rules(mp, (row, *table))

    patch.__doc__ = (f"A completion from the {source} is applied in any state of the job, "
                     f"cancelling/cancelled included, and whatever the cancel mark says.")
    return patch


def persistence_kept_on_cancel(mp: pytest.MonkeyPatch) -> None:
    """The hook drops every ``ClearPersist`` of a transition into cancelling/cancelled."""
    real = dispatcher.transition

    def transition(state: Any, event: Any) -> tuple:
        new, done = real(state, event)
        if new.status in (State.CANCELLING, State.CANCELLED):
            done = [a for a in done if not isinstance(a, ClearPersist)]
        return new, done

    mp.setattr(dispatcher, "transition", transition)


def auto_download_timer_kept(mp: pytest.MonkeyPatch) -> None:
    """The auto-download effect returns no cleanup: its timer outlives the state."""
    real = activity_table.auto_download

    def auto_download(scene: Any) -> None:
        real(scene)  # the timer is set; its Stop is dropped

    _change_activity(mp, "auto_download", start=auto_download)


def _download_at_once(table: tuple[Rule, ...]) -> tuple[Rule, ...]:
    out = []
    for r in table:
        if r.on in (AutoDownloadDue, Download) and r.to == State.DOWNLOADING:
            r = replace(r, to=State.DELIVERING, update=changes.handed_out_here, do=(actions.start_download,),
                        why="MUTANT")
        out.append(r)
    return tuple(out)


def download_without_lock(mp: pytest.MonkeyPatch) -> None:
    """The auto-download (and the Download click) downloads at once, without the lock;
    the mark checks made before are kept."""
    _set_rules(mp, _download_at_once(rules.RULES))


def download_without_lock_nor_mark_check(mp: pytest.MonkeyPatch) -> None:
    """As ``download_without_lock``, and neither the "downloaded" nor the "claimed" mark is
    checked first."""
    table = rules.RULES
    for event in (AutoDownloadDue, Download):
        table = _drop(_drop(table, event, download_marked), event, claim_marked)
    _set_rules(mp, _download_at_once(table))


def download_state_without_lock_request(mp: pytest.MonkeyPatch) -> None:
    """``downloading`` has no activity: the tab shows is_downloading and asks for no lock."""
    mp.setattr(engine, "ACTIVITIES", tuple(row for row in engine.ACTIVITIES if row.state != State.DOWNLOADING))


def failure_news_ignored(mp: pytest.MonkeyPatch) -> None:
    """No row accepts news of a failed (or expired) job."""
    failure = status_is("failed", "expired").name
    table = tuple(r for r in rules.RULES if not (r.on is Update and failure in r.guard.names))
    assert len(table) < len(rules.RULES)
    _set_rules(mp, table)


# ------------------------------------------------------ the rules of issue 18 (C9, C10)

def downloaded_when_handed_out(mp: pytest.MonkeyPatch) -> None:
    """The tab that gets the lock shows the job downloaded as soon as it hands the file to
    the browser (a clicked link taken for a delivered file), as before issue 18."""
    table = [replace(r, to=State.DOWNLOADED, do=(actions.start_download, actions.confirm_download), why="MUTANT")
             if r.on is LockResult and granted.name in r.guard.names else r for r in rules.RULES]
    _set_rules(mp, tuple(table))


def auto_download_in_any_browser(mp: pytest.MonkeyPatch) -> None:
    """A completion seen live downloads unasked in every browser, whichever started it."""
    def completed(s: Any, e: Any) -> dict:
        return {"job": e.update.to_job(s.job), "auto_download": s.live}

    _set_rules(mp, tuple(replace(r, update=completed) if r.update is changes.completed else r for r in rules.RULES))


def lock_loser_offers_the_download(mp: pytest.MonkeyPatch) -> None:
    """A tab denied the download lock falls back to ``completed`` with a Download button until
    the winner's news arrives, as before issue 18."""
    def offered(s: Any, e: Any) -> dict:
        return {"auto_download": False, "notice": "another tab is downloading this export"}

    denied = [r for r in rules.RULES if r.on is LockResult and r.guard.names == ("event_job",)]
    if len(denied) != 1:
        raise AssertionError("no LockResult row for a denied lock: the mutant no longer applies")
    _set_rules(mp, tuple(replace(r, to=State.COMPLETED, update=offered, why="MUTANT") if r is denied[0] else r
                         for r in rules.RULES))


def _persist_progress(mp: pytest.MonkeyPatch) -> None:
    """The row that applies progress news persists each of them (``persistence.save`` as it
    is)."""
    table = [replace(r, do=tuple(actions.persist if d is actions.persist_if_starter else d for d in r.do))
             for r in rules.RULES]
    _set_rules(mp, tuple(table))


def progress_persisted(mp: pytest.MonkeyPatch) -> None:
    """Every progress event rewrites the project's record (so every tab's write wakes every
    other tab): the row persists each news, and ``persistence.save`` writes any newer seq."""
    _persist_progress(mp)
    real = persistence.save

    def save(storage: Any, project_id: int, job: Any, now_ms: float, tab_id: str, replace_other: bool = False) -> bool:
        current, _ = persistence.decode_record(storage.get(persistence.storage_key(project_id)), project_id, now_ms)
        if current is not None and current.job.id == job.id and current.job.seq < job.seq:
            storage.set(persistence.storage_key(project_id), persistence.PersistedExport(
                v=1, saved_at=now_ms, project_id=project_id, job=job, tab_id=tab_id).model_dump_json())
            return True
        return real(storage, project_id, job, now_ms, tab_id, replace_other)

    mp.setattr(persistence, "save", save)


def history_link_while_auto_download_pending(mp: pytest.MonkeyPatch) -> None:
    """The history row of the export that has just completed is a plain download link while
    its auto-download is pending, as before issue 18 (a second door to the file)."""
    real = display.download_door

    def download_door(state: Any) -> Any:
        return "again" if state.status == State.COMPLETED and state.auto_download else real(state)

    mp.setattr(display, "download_door", download_door)


def another_browsers_download_taken_for_ours(mp: pytest.MonkeyPatch) -> None:
    """The server's ``delivered`` flag alone makes a tab show the job downloaded, whichever
    browser's download the server recorded (C10: it must be a download a tab of this
    browser claimed, or this browser's downloaded mark)."""
    flag = Guard("delivered_flag", lambda s, e: e.marks.downloaded or bool(e.update.delivered))
    table = []
    for r in rules.RULES:
        if download_recorded.name in r.guard.names:
            parts = [flag if p is download_recorded else p for p in r.guard.parts]
            guard = parts[0]
            for part in parts[1:]:
                guard = guard & part
            r = replace(r, guard=guard, why="MUTANT")
        table.append(r)
    if table == list(rules.RULES):
        raise AssertionError("no row guarded by download_recorded: the mutant no longer applies")
    _set_rules(mp, tuple(table))


def delivery_never_given_up(mp: pytest.MonkeyPatch) -> None:
    """No row gives up on a download the server has not recorded: after its last ask the
    tab stays ``delivering`` (no "did not complete", no Download button), as a page that
    trusts its click does."""
    table = tuple(r for r in rules.RULES if not (r.on is DeliveryUnconfirmed and r.to == State.UNDELIVERED))
    if len(table) != len(rules.RULES) - 1:
        raise AssertionError("no DeliveryUnconfirmed row to undelivered: the mutant no longer applies")
    _set_rules(mp, table)


MUTANTS: tuple[Mutant, ...] = (
    Mutant("K1", "cancel-keeps-completed-job-id", "cancel not clearing completed_job_id",
           cancel_keeps_completed.__doc__, cancel_keeps_completed, Search(ONE_COMPLETED, 3), "I7"),
    Mutant("K2", "auto-download-no-cancel-check", "auto-download without a cancel check (timer only)",
           auto_download_no_cancel_check.__doc__, auto_download_no_cancel_check, Search(TWO_COMPLETING_CANCEL, 60, 1),
           None, masked_by="the cancel mark is checked again under the download lock"),
    Mutant("K3", "auto-download-path-no-cancel-check", "auto-download without a cancel check (timer and lock)",
           auto_download_path_no_cancel_check.__doc__, auto_download_path_no_cancel_check,
           Search(TWO_COMPLETING_CANCEL, 60, 1), "I1"),
    Mutant("K4", "auto-download-deps-without-job", "the auto-download effect without current_job in its deps",
           auto_download_deps_without_state.__doc__, auto_download_deps_without_state,
           Search(ONE_RUNNING_COMPLETES, 2), "I3"),
    Mutant("K5", "socket-completion-no-cancel-guard", "the WebSocket completion handler without a cancel guard",
           _completion_without_guard("socket").__doc__, _completion_without_guard("socket"),
           Search(ONE_RUNNING, 6), "I7"),
    Mutant("K6", "poll-completion-no-cancel-guard", "the polling handler without a cancel guard",
           _completion_without_guard("poll").__doc__, _completion_without_guard("poll"),
           Search(ONE_RUNNING_POLLING, 6), "I7"),
    Mutant("K7", "persistence-kept-on-cancel", "persistence not cleared on cancel",
           persistence_kept_on_cancel.__doc__, persistence_kept_on_cancel, Search(ONE_RUNNING, 6), "I5"),
    Mutant("K8", "auto-download-timer-not-cleared", "the auto-download timer not cleared by the effect's cleanup",
           auto_download_timer_kept.__doc__, auto_download_timer_kept, Search(ONE_COMPLETED, 3), "I8"),
    Mutant("K9", "download-without-lock", "a download without the lock (the mark check kept)",
           download_without_lock.__doc__, download_without_lock, Search(TWO_COMPLETING, 60, 2), None,
           masked_by="the downloaded mark: in one browser's localStorage as modelled here (every read sees "
                     "every earlier write) checking it and writing it in one event is already atomic"),
    Mutant("K10", "download-without-lock-nor-mark", "a download without the lock (nor the mark check)",
           download_without_lock_nor_mark_check.__doc__, download_without_lock_nor_mark_check,
           Search(TWO_COMPLETING, 60, 2), "I2"),
    Mutant("K11", "checker-self-test-downloading-without-lock", "(checker self-test) is_downloading while asking for no lock",
           download_state_without_lock_request.__doc__, download_state_without_lock_request,
           Search(ONE_COMPLETED, 3), "I6", react=False),
    Mutant("K12", "checker-self-test-failure-ignored", "(checker self-test) a failed job is never shown as failed",
           failure_news_ignored.__doc__, failure_news_ignored, Search(ONE_RUNNING_FAILS, 4), "I4",
           react=False),
    Mutant("K13", "downloaded-when-handed-out", "a clicked download link taken for a delivered file (issue 18, 1)",
           downloaded_when_handed_out.__doc__, downloaded_when_handed_out, Search(ONE_COMPLETED, 3), "I10",
           react=False),
    Mutant("K14", "history-link-while-auto-download-pending",
           "a second door to the file: the history's plain link while the auto-download is pending (issue 18, 2)",
           history_link_while_auto_download_pending.__doc__, history_link_while_auto_download_pending,
           Search(ONE_COMPLETED_CLICKED, 4), "I2", react=False),
    Mutant("K15", "auto-download-in-any-browser", "the job auto-downloaded in every browser (issue 18, 3)",
           auto_download_in_any_browser.__doc__, auto_download_in_any_browser, Search(TWO_BROWSERS_COMPLETES, 60, 0),
           "I9", react=False),
    Mutant("K16", "progress-persisted", "every tab rewrites the record on every progress event (issue 18, 4)",
           progress_persisted.__doc__, progress_persisted, Search(ONE_RUNNING_PROGRESS, 3), "I12", react=False),
    Mutant("K17", "lock-loser-offers-the-download",
           "a tab that loses the lock shows the Download button until the winner's news (issue 18, 4)",
           lock_loser_offers_the_download.__doc__, lock_loser_offers_the_download,
           Search(TWO_COMPLETING_FALLBACK, 60, 2), "I11", react=False),
    Mutant("K18", "another-browsers-download-taken-for-ours",
           "the server's delivered flag (another browser's download) shown as this browser's (issue 18, 3)",
           another_browsers_download_taken_for_ours.__doc__, another_browsers_download_taken_for_ours,
           Search(TWO_BROWSERS_COMPLETED_B1_POLLING, 60, 0), "I3", react=False),
    Mutant("K19", "delivery-never-given-up",
           "a download the server never saw is never offered again (issue 18, 1)",
           delivery_never_given_up.__doc__, delivery_never_given_up, Search(ONE_COMPLETED_DOWNLOAD_FAILS, 60, 1),
           "I3", react=False),
)
