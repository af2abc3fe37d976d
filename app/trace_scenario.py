"""A fixed scenario whose trace must be the same in CPython and in Pyodide.

``run_trace()`` drives the reactive store (``app.store``), the hook model (``app.hooks``)
and the export state machine (``app.machine``) through a fixed list of writes, renders
and events, and returns what happened as a list of strings: the order in which effects,
cleanups and computeds ran, and for every machine event the transition taken, the actions
emitted, the activities of the new state and what the page would show. Nothing in it
depends on time, randomness, hash order or the interpreter's version (no set or dict of
strings is printed, no exception text), so two interpreters that run the core the same
way give equal lists; ``e2e/test_core_in_pyodide.py`` compares Pyodide in Chromium with
CPython. Pure: stdlib and ``app`` only, no ``js``.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from app.hooks import mount, use_effect, use_memo, use_ref, use_state
from app.machine import (
    AutoDownloadDue, Cancel, CancelAnswered, ClearMark, ClearPersist, ClearStartCancel, Dismiss, ExportState, JobUpdate,
    LockResult, Marks, MarkStartCancel, Persist, Post, Restore, Start, StartAccepted, StartDownload, StartFailed,
    Update, Warn, WriteMark, activities, initial_state, transition, view,
)
from app.models import ExportJob, ExportOptions
from app.store import Scope, batch, computed, effect, set_error_handler, signal

PROJECT_ID = 7
CREATED_AT = "2026-01-01T00:00:00+00:00"
BROWSER = "b1"
TOKEN = f"{BROWSER}.tab.1"


def store_trace() -> list[str]:
    """Signals, lazy cached computeds with equality bail-out, auto-tracked and
    explicit-deps effects with cleanups, a batch, an equal write, an effect that fails
    (its error goes to the handler, the others run on) and a disposed scope."""
    out: list[str] = []
    errors: list[str] = []
    previous = set_error_handler(lambda exc, where: errors.append(f"error in {where.split(' ')[0]}: "
                                                                  f"{type(exc).__name__}"))
    try:
        a, b = signal(1), signal(2)

        def total_fn() -> int:
            out.append("compute total")
            return a.value + b.value

        total = computed(total_fn)

        def parity_fn() -> str:
            out.append("compute parity")
            return "odd" if total.value % 2 else "even"

        parity = computed(parity_fn)
        scope = Scope()
        with scope:
            def e1() -> Callable[[], None]:
                seen = total.value
                out.append(f"e1 total={seen}")
                return lambda: out.append(f"e1 cleanup total={seen}")

            def e2() -> None:
                out.append(f"e2 parity={parity.value}")

            def e3() -> None:
                out.append(f"e3 b={b.peek()} a={a.peek()}")

            def e4() -> None:
                if total.value > 20:
                    raise ValueError("too big")
                out.append(f"e4 total={total.peek()}")

            effect(e1)
            effect(e2)
            effect(e3, deps=[b])
            effect(e4)
        out.append("write a=3")
        a.value = 3
        out.append("batch a=4 b=4")
        with batch():
            a.value = 4
            b.value = 4
            out.append("inside batch")
        out.append("write b=4 (equal)")
        b.value = 4
        out.append("write a=30")
        a.value = 30
        out.append("dispose scope")
        scope.dispose()
        out.append("write a=1 after dispose")
        a.value = 1
        out.append(f"total now {total.value}")
    finally:
        set_error_handler(previous)
    return out + errors


def hooks_trace() -> list[str]:
    """A component with state, a ref, a memo and effects with deps: render/commit order,
    a state set inside an effect (re-render after the commit), cleanups, unmount."""
    out: list[str] = []
    setters: dict[str, Any] = {}

    def component() -> str:
        count, set_count = use_state(0)
        label, set_label = use_state("a")
        renders = use_ref(0)
        renders.current += 1
        doubled = use_memo(lambda: (out.append(f"memo {count}"), count * 2)[1], [count])
        setters["count"], setters["label"] = set_count, set_label

        def on_count() -> Callable[[], None]:
            out.append(f"effect count={count}")
            if count == 1:
                set_label("b")  # re-renders after this commit
            return lambda: out.append(f"cleanup count={count}")

        def on_label() -> Callable[[], None]:
            out.append(f"effect label={label}")
            return lambda: out.append(f"cleanup label={label}")

        use_effect(on_count, [count])
        use_effect(on_label, [label])
        use_effect(lambda: out.append("effect once"), [])
        out.append(f"render #{renders.current} count={count} label={label} doubled={doubled}")
        return f"{count}{label}"

    mounted = mount(component)
    out.append(f"result {mounted.result.peek()}")
    setters["count"](1)
    out.append(f"result {mounted.result.peek()}")
    setters["count"](lambda n: n + 1)
    setters["label"]("b")  # equal: no render
    out.append(f"renders {mounted.render_count}")
    mounted.unmount()
    setters["count"](5)  # after unmount: nothing
    out.append(f"renders {mounted.render_count}")
    return out


def _job(status: str, seq: int, progress: float = 0.0, delivered: bool = False, job_id: str = "job-1") -> ExportJob:
    return ExportJob(id=job_id, project_id=PROJECT_ID, status=status, seq=seq, progress=progress,
                     created_at=CREATED_AT, delivered=delivered, options=ExportOptions(), start_token=TOKEN)


def _news(status: str, seq: int, source: str, progress: float = 0.0, job_id: str = "job-1",
          marks: Marks = Marks(), delivered: Optional[bool] = None) -> Update:
    return Update(JobUpdate(job_id, PROJECT_ID, seq, status, progress, delivered=delivered, start_token=TOKEN),
                  source, marks)


def _action(action: Any) -> str:
    if isinstance(action, Post):
        return f"post {action.kind} {action.job.id}@{action.job.seq}"
    if isinstance(action, Persist):
        return f"persist {action.job.id}@{action.job.seq} {action.job.status}" + (" (replace)" if action.replace_other else "")
    if isinstance(action, ClearPersist):
        return f"clear {action.job_id}"
    if isinstance(action, WriteMark):
        return f"mark {action.kind} {action.job_id}"
    if isinstance(action, ClearMark):
        return f"unmark {action.kind} {action.job_id}"
    if isinstance(action, StartDownload):
        return f"download {action.job.id}"
    if isinstance(action, (MarkStartCancel, ClearStartCancel)):
        return type(action).__name__
    if isinstance(action, Warn):
        return "warn"
    return type(action).__name__


def _describe(state: ExportState) -> str:
    v = view(state)
    job = state.job
    return (f"{state.status} job={job.id + '@' + str(job.seq) + ' ' + job.status if job else None} "
            f"progress={v.export_progress:g} exporting={v.is_exporting} downloading={v.is_downloading} "
            f"completed={v.completed_job_id} can_download={v.can_download} auto={state.auto_download} "
            f"live={state.live} activities={','.join(sorted(activities(state))) or '-'}")


MACHINE_EVENTS: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("start", lambda: Start(ExportOptions())),
    ("socket news racing the 202", lambda: _news("running", 2, "socket", 5.0)),
    ("202 queued", lambda: StartAccepted(_job("queued", 1))),
    ("stale socket news", lambda: _news("queued", 1, "socket")),
    ("progress", lambda: _news("running", 3, "socket", 50.0)),
    ("channel news without progress", lambda: _news("running", 4, "channel")),
    ("completed", lambda: _news("completed", 5, "socket", 100.0)),
    ("auto-download timer", lambda: AutoDownloadDue("job-1")),
    ("lock granted", lambda: LockResult("job-1", True)),
    ("the server records the download", lambda: _news("completed", 5, "poll", 100.0, delivered=True,
                                                      marks=Marks(claimed=True))),
    ("cancel after the download (no row)", lambda: Cancel()),
    ("dismiss", lambda: Dismiss()),
    ("start again", lambda: Start(ExportOptions())),
    ("lost POST", lambda: StartFailed("network error", retryable=True)),
    ("409 attaches", lambda: StartAccepted(_job("running", 3, 20.0, job_id="job-2"), conflict=True)),
    ("cancel", lambda: Cancel()),
    ("completion while cancelling (ignored)", lambda: _news("completed", 4, "poll", 100.0, "job-2")),
    ("cancel lost", lambda: CancelAnswered("retry", None, "network error")),
    ("cancel answered", lambda: CancelAnswered("ok", _job("cancelled", 5, 20.0, job_id="job-2"))),
    ("late cancelled news", lambda: _news("cancelled", 5, "socket", 20.0, "job-2")),
    ("restore while cancelled (no row)", lambda: Restore(_job("running", 2, 40.0, job_id="job-3"))),
    ("dismiss the cancelled job", lambda: Dismiss()),
    ("restore a record", lambda: Restore(_job("running", 2, 40.0, job_id="job-3"))),
    ("re-query answer", lambda: _news("running", 3, "fetch", 60.0, "job-3")),
    ("failure", lambda: _news("failed", 4, "socket", 60.0, "job-3")),
)
"""(label, event factory): the machine part of the scenario, from a fresh state."""


def machine_trace() -> list[str]:
    """Every event of ``MACHINE_EVENTS`` through ``transition``, one line per event:
    label, old and new state (see ``_describe``) and the actions in order."""
    out: list[str] = []
    state = initial_state(PROJECT_ID, BROWSER)
    out.append(f"initial {_describe(state)}")
    for label, make in MACHINE_EVENTS:
        new, actions = transition(state, make())
        acts = "; ".join(_action(a) for a in actions) or "-"
        moved = "ignored" if new is state else f"{state.status} -> {new.status}"
        out.append(f"{label}: {moved} | {acts} | {_describe(new)}")
        state = new
    return out


def run_trace() -> list[str]:
    """The whole scenario: ``store_trace() + hooks_trace() + machine_trace()``, each line
    prefixed with its part (``store:``, ``hooks:``, ``machine:``)."""
    return ([f"store: {line}" for line in store_trace()] + [f"hooks: {line}" for line in hooks_trace()]
            + [f"machine: {line}" for line in machine_trace()])
