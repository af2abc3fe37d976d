"""``use_advanced_export(project_id, ports)``: the export hook (C1-C8 of DESIGN.md) built
from ``app.hooks``.

It keeps the machine state of ``app.machine`` in ``use_state`` (mirrored in a ref, so
callbacks never read a stale value); the ``Dispatcher`` feeds it events and runs the
actions of each transition; ``Inputs`` turns the WebSocket, the other tabs and the tab's
visibility into events; and one ``use_effect`` per activity (``ACTIVITY_EFFECTS``) runs
the requests, timers and the lock of the current state, each stopped by its cleanup when
the state is left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from pydantic import ValidationError

from app import persistence
from app.export_hook import activities as activity_table
from app.export_hook.activities import PollRounds, Scene
from app.export_hook.dispatcher import Dispatcher
from app.export_hook.inputs import Inputs
from app.hooks import use_callback, use_effect, use_ref, use_state
from app.identity import start_token
from app.machine import Cancel, Dismiss, Download, ExportState, ExportView, Restore, Start, StartRejected
from app.machine import activities, initial_state, view
from app.models import ExportOptions
from app.ports import Ports, Stop


@dataclass(frozen=True)
class AdvancedExport(ExportView):
    """What the hook returns on each render: the values of that render (the fields of
    ``app.machine.ExportView``, plain values as React's hooks return) and stable callbacks
    that always act on the latest state. ``socket_connected``: the WebSocket is up;
    ``state``: the machine state."""

    socket_connected: bool
    state: ExportState
    start_export: Callable[..., None]
    cancel_export: Callable[[], None]
    download: Callable[[str], None]
    dismiss: Callable[[], None]


def checked_options(options: Union[ExportOptions, dict, None]) -> Union[ExportOptions, StartRejected]:
    """The options of an Export click (None: the defaults), or why they cannot be sent
    (R8: invalid options are never sent)."""
    if options is None:
        return ExportOptions()
    if isinstance(options, ExportOptions):
        return options
    try:
        return ExportOptions.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in exc.errors())
        return StartRejected(f"invalid export options: {problems}")


class _Parts:
    """The hook's imperative parts, made on its first render."""

    def __init__(self, project_id: int, ports: Ports, state_ref, set_state, set_poll_round) -> None:
        self.project_id, self.ports = project_id, ports
        self.dispatcher = Dispatcher(project_id, ports, state_ref, set_state)
        self.inputs = Inputs(self.dispatcher)
        self.polls = PollRounds(lambda: set_poll_round(lambda n: n + 1))
        self.starts = 0

    def mount(self) -> Stop:
        """Restore the persisted export (C5, C8); the cleanup (unmount) stops everything."""
        p = self.ports
        record = persistence.load(p.storage, self.project_id, p.clock.now(), p.log)
        if record is not None:
            self.dispatcher.dispatch(Restore(record.job))

        def unmount() -> None:
            self.dispatcher.stop()
            self.inputs.stop()

        return unmount

    def start_export(self, options: Union[ExportOptions, dict, None] = None) -> None:
        checked = checked_options(options)
        if isinstance(checked, StartRejected):
            self.dispatcher.dispatch(checked)
            return
        self.starts += 1
        self.dispatcher.dispatch(Start(checked, self.new_token()))

    def new_token(self) -> str:
        """This start's name (R1), carrying this browser's id (C10, ``app.identity``)."""
        p = self.ports
        if p.new_token is not None:
            return p.new_token()
        return start_token(p.browser_id, p.tab_id, self.starts) if p.browser_id else f"{p.tab_id}.{self.starts}"


def use_advanced_export(project_id: int, ports: Ports) -> AdvancedExport:
    """The export hook; call it while a component renders (``app.hooks.mount``).

    ``project_id`` and ``ports`` are fixed for the life of the mounted component (mount
    anew to switch project; ``ValueError`` otherwise). Returns ``AdvancedExport``.
    """
    state, set_state = use_state(lambda: initial_state(project_id, ports.browser_id))
    state_ref = use_ref(state)
    socket_up, set_socket_up = use_state(False)
    poll_round, set_poll_round = use_state(0)
    parts_ref = use_ref(None)
    if parts_ref.current is None:
        parts_ref.current = _Parts(project_id, ports, state_ref, set_state, set_poll_round)
    parts: _Parts = parts_ref.current
    if parts.project_id != project_id or parts.ports is not ports:
        raise ValueError("use_advanced_export: project_id and ports must not change; mount anew")

    use_effect(parts.mount, [])
    use_effect(lambda: parts.inputs.listen(set_socket_up), [])
    running = activities(state)
    scene = Scene(state, socket_up, poll_round, parts.dispatcher, parts.inputs, parts.polls)
    for activity in activity_table.ACTIVITY_EFFECTS:
        on = activity.name in running
        use_effect(activity.effect(on, scene), activity.deps(on, scene))

    dispatch = parts.dispatcher.dispatch
    return AdvancedExport(
        **vars(view(state)), socket_connected=socket_up, state=state,
        start_export=use_callback(parts.start_export, []),
        cancel_export=use_callback(lambda: dispatch(Cancel()), []),
        download=use_callback(lambda job_id: dispatch(Download(job_id)), []),
        dismiss=use_callback(lambda: dispatch(Dismiss()), []),
    )
