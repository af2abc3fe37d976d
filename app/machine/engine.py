"""``transition(state, event) -> (new_state, actions)`` over ``rules.RULES``, and the
activities each state runs (``ACTIVITIES``).

``transition`` is pure: it reads only its arguments (and the table), and the actions are
plain records the hook executes in order. Long-lived work (HTTP requests, timers, the
download lock, polling) is not an action but an *activity* of a state: the hook runs one
``use_effect`` per activity whose deps include whether it runs, so leaving the state runs
the cleanup that aborts the request, clears the timer or releases the lock.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

from app.machine import rules
from app.machine.events import Marks, Update
from app.machine.guards import ALWAYS, Guard, auto_on, handed_out_here, has_job
from app.machine.rules import SAME, Rule
from app.machine.state import WAITING, ExportState, State


def find_rule(state: ExportState, event: Any) -> Optional[Rule]:
    """The first row of ``rules.RULES`` that accepts ``event`` in ``state``, if any."""
    for rule in rules.RULES:
        if isinstance(event, rule.on) and state.status in rule.when and rule.guard(state, event):
            return rule
    return None


def transition(state: ExportState, event: Any) -> tuple[ExportState, list]:
    """Apply ``event`` to ``state``: ``(new_state, actions)``. Pure; an event no rule accepts
    returns ``(state, [])`` (the very same state object)."""
    rule = find_rule(state, event)
    if rule is None:
        return state, []
    target = state.status if rule.to == SAME else rule.to(state, event) if callable(rule.to) else rule.to
    changes = rule.update(state, event) if rule.update is not None else {}
    new = replace(state, status=State(target), **changes)
    actions: list = []
    for do in rule.do:
        actions.extend(do(state, new, event))
    # News kept while the job was not known yet is applied once it is.
    if new.early is not None and state.status in WAITING and new.status not in WAITING:
        early, new = new.early, replace(new, early=None)
        if new.job is not None and early.job_id == new.job.id:
            marks = getattr(event, "marks", Marks())
            newer_state, more = transition(new, Update(early, state.early_source, marks))
            new, actions = newer_state, actions + more
    return new, actions


@dataclass(frozen=True)
class During:
    """While the machine is in ``state`` (and ``guard`` holds of it), ``activity`` runs."""

    state: State
    activity: str
    guard: Guard = ALWAYS


ACTIVITIES: tuple[During, ...] = (
    During(State.RESTORING, "fetch_job"),
    During(State.STARTING, "start_request"),
    During(State.CANCELLING, "start_request", ~has_job),
    During(State.CANCELLING, "cancel_request", has_job),
    During(State.QUEUED, "poll"),
    During(State.RUNNING, "poll"),
    During(State.CANCELLING, "poll", has_job),
    During(State.COMPLETED, "auto_download", auto_on),
    During(State.DOWNLOADING, "download_lock"),
    During(State.DELIVERING, "download_lock", handed_out_here),
    During(State.DELIVERING, "confirm_delivery"),
    During(State.DOWNLOADED, "download_lock", handed_out_here),
)
"""What runs in each state. ``poll`` runs slowly while the WebSocket is up and every 2 s
while it is down (C7); ``download_lock`` stays held after a download this tab made, so no
other tab can even try until this one moves on; ``confirm_delivery`` asks the server
whether it recorded the download (C9)."""


def activities(state: ExportState) -> frozenset[str]:
    """The activities that run in ``state`` (see ``ACTIVITIES``)."""
    return frozenset(row.activity for row in ACTIVITIES if row.state == state.status and row.guard(state, None))
