"""The client export state machine, as data (C1-C8 of DESIGN.md).

- ``state``: the states (``State``, a ``StrEnum``), their named groups and ``ExportState``;
- ``events``: what the machine hears (``Update``, ``Cancel``, ``LockResult``...) and ``Marks``;
- ``actions``: what a transition asks the hook to do (``Post``, ``Persist``...), and ``Do``;
- ``guards``: the named predicates of the rules; ``changes``: targets and field changes;
- ``rules``: the table (``RULES``, ``describe_rules``);
- ``engine``: ``transition(state, event)`` over the table, and the activities of each state;
- ``display``: what the page shows (``view(state)``).

This module hands on the names the hook, the page and the tests use.
"""
from app.machine.actions import (
    Action, ClearMark, ClearPersist, ClearStartCancel, MarkStartCancel, Persist, Post, StartDownload, Warn,
    WriteMark,
)
from app.machine.events import (
    AutoDownloadDue, Cancel, CancelAnswered, DeliveryUnconfirmed, Dismiss, Download, Event, FetchFailed, JobUpdate,
    LockResult, Marks, Remote, Restore, Start, StartAccepted, StartFailed, StartRejected, Update, event_job_id,
    event_start_token,
)
from app.machine.guards import MAX_START_ATTEMPTS
from app.machine.rules import RULES, SAME, Rule, describe_rules
from app.machine.state import POLLABLE, STATES, ExportState, State, initial_state
from app.machine.engine import ACTIVITIES, activities, transition
from app.machine.display import ExportView, view
