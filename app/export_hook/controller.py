"""``ExportController``: the page's handle on a mounted ``use_advanced_export``.

Each value of the hook (``VALUE_FIELDS``: the fields of ``AdvancedExport`` that are not
callbacks) is a read-only store ``Computed``; read ``.value`` inside a store effect to
re-render on change. The four methods forward to the hook's callbacks.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, Callable, Optional, Union

from app.export_hook.hook import AdvancedExport, use_advanced_export
from app.hooks import Mounted, mount
from app.machine import initial_state, view
from app.models import ExportOptions
from app.ports import Ports
from app.store import Computed, computed, detached

CALLBACKS = ("start_export", "cancel_export", "download", "dismiss")
VALUE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AdvancedExport) if f.name not in CALLBACKS)


class ExportController:
    """See the module doc. Before the first render the values are those of a fresh idle
    state (``socket_connected`` false)."""

    def __init__(self, mounted: Mounted, project_id: int) -> None:
        self._mounted = mounted
        first = initial_state(project_id)
        self._before = {**vars(view(first)), "socket_connected": False, "state": first}
        self._computeds: list[Computed] = []
        for name in VALUE_FIELDS:
            c = detached(lambda name=name: computed(lambda: self._read(name)))
            self._computeds.append(c)
            setattr(self, name, c)

    def _read(self, name: str) -> Any:
        result = self._mounted.result.value
        return self._before[name] if result is None else getattr(result, name)

    def _call(self, callback: str, *args: Any) -> None:
        """Call the mounted hook's ``callback`` (nothing once it is unmounted)."""
        hook: Optional[AdvancedExport] = self._mounted.result.peek() if self._mounted.is_mounted else None
        if hook is not None:
            getattr(hook, callback)(*args)

    def start_export(self, options: Union[ExportOptions, dict, None] = None) -> None:
        self._call("start_export", options)

    def cancel_export(self) -> None:
        self._call("cancel_export")

    def download(self, job_id: str) -> None:
        self._call("download", job_id)

    def dismiss(self) -> None:
        self._call("dismiss")

    @property
    def mounted(self) -> Mounted:
        """The ``app.hooks.Mounted`` component (``render_count``, ``result``)."""
        return self._mounted

    def dispose(self) -> None:
        for c in self._computeds:
            c.dispose()


def create_export_controller(project_id: int, ports: Ports) -> tuple[ExportController, Callable[[], None]]:
    """Mount a component running ``use_advanced_export(project_id, ports)``; returns
    ``(controller, unmount)``. ``unmount()`` stops every request, timer, lock and
    subscription of the hook (idempotent)."""
    mounted = detached(lambda: mount(lambda: use_advanced_export(project_id, ports)))
    controller = ExportController(mounted, project_id)

    def unmount() -> None:
        mounted.unmount()
        controller.dispose()

    return controller, unmount
