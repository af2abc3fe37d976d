"""Recent exports of the project (``GET /api/projects/{pid}/exports``) as a ``Component``.

Each entry shows its status, when it was made, the archive size, what it holds and, when
the server still has the archive, a way to download it. The export the hook follows goes
through the hook's one door to the file (``app.machine.display.download_door``): while it
is completed and not downloaded here (its auto-download pending too, or after a download
that did not complete) a button that calls the hook (lock, marks, the server's word: C4,
C9), once downloaded a "Download again" link, and nothing while it runs or is handed out.
Older exports get a plain link (the browser streams the file; the server's
Content-Disposition names it).
"""
from __future__ import annotations

from typing import Any, Callable

import js  # type: ignore[import-not-found]

from app.browser.dom import Component, attr, el, h, set_text
from app.browser.export_delete import FINISHED
from app.browser.interop import is_missing
from app.browser.options_form import describe_options
from app.browser.page_state import PageState
from app.browser.texts import HISTORY_STATUS_TEXT, format_bytes, format_duration, job_duration_ms, parse_iso_ms, relative_time
from app.routes import download_path
from app.machine.display import download_door
from app.models import ExportOptions


def _options(item: dict) -> ExportOptions:
    try:
        return ExportOptions.model_validate(item.get("options") or {})
    except Exception:  # noqa: BLE001 - an old or odd record still gets listed
        return ExportOptions()


class HistoryView(Component):
    """The ``<ol id="history-list">`` of ``state.history``; ``on_refresh()`` reloads it."""

    def __init__(self, state: PageState, controller: Any, on_refresh: Callable[[], None],
                 on_delete: Callable[[str], None] = lambda job_id: None) -> None:
        super().__init__()
        self.state = state
        self.controller = controller
        self.on_refresh = on_refresh
        self.on_delete = on_delete
        self._rows: dict[str, tuple[tuple, Any]] = {}
        self._described: dict[tuple[str, int], str] = {}

    def build(self) -> Any:
        self._rows = {}
        return h("ol", {"id": "history-list", "class_": "history"})

    def setup(self) -> None:
        self.listen(self.root, "click", self._on_click)
        refresh = el("history-refresh")
        refresh.disabled = False
        self.listen(refresh, "click", lambda event: self.on_refresh())
        self.effect(self._render, later=True)

    def _on_click(self, event: Any) -> None:
        target = event.target.closest("[data-action]")
        if is_missing(target):
            return
        job_id, action = attr(target, "data-job-id"), attr(target, "data-action")
        if action == "download" and job_id:
            self.controller.download(job_id)
        elif action == "download-link" and job_id:
            self.state.mark_downloaded(job_id)
        elif action == "delete" and job_id:
            target.disabled = True
            self.on_delete(job_id)

    def _render(self) -> None:
        items = self.state.history.value
        error = self.state.history_error.value
        downloaded = self.state.downloaded_ids.value
        machine = self.controller.state.value
        current = machine.job if machine is not None else None
        door = download_door(machine) if machine is not None else None
        note = el("history-empty")
        if error:
            set_text(note, error)
        elif items is None:
            set_text(note, "Loading recent exports…")
        elif not items:
            set_text(note, "No exports of this project yet.")
        else:
            set_text(note, "")
        note.hidden = not str(note.textContent)
        now = float(js.Date.now())
        total = len(self.state.all_ids)
        rows: dict[str, tuple[tuple, Any]] = {}
        for item in items or []:
            job_id = str(item.get("id", ""))
            status = str(item.get("status", ""))
            control = "link"
            if current is not None and current.id == job_id:
                control = door or "none"
                if status in ("queued", "running") and current.status != status:
                    status = current.status  # the entry is a snapshot; the hook knows better
            spec = self._row_spec(item, job_id, status, job_id in downloaded, control, now, total)
            kept = self._rows.get(job_id)
            # Only a row whose content changed is rebuilt: the list grows with every
            # export, and this runs on each change of the export state.
            rows[job_id] = kept if kept is not None and kept[0] == spec else (spec, self._build_row(spec))
        elements = [element for _, element in rows.values()]
        if [id(e) for e in elements] != [id(e) for _, e in self._rows.values()]:
            self.root.replaceChildren(*elements)
        self._rows = rows

    def _row_spec(self, item: dict, job_id: str, status: str, downloaded: bool, control: str,
                  now: float, total: int) -> tuple:
        """Everything a row shows, as a comparable tuple (see ``_build_row``)."""
        created = item.get("created_at")
        created_ms = parse_iso_ms(created)
        size = format_bytes(item.get("size_bytes")) if status == "completed" else ""
        took = job_duration_ms(item)
        what = self._describe(job_id, item, total)
        if took is not None and status == "completed":
            what += f" · made in {format_duration(took)}"
        notes = []
        if status in ("failed", "expired") and item.get("message"):
            notes.append(str(item["message"]))
        warnings = item.get("warnings") or []
        if warnings:
            notes.append(f"{len(warnings)} warning" + ("" if len(warnings) == 1 else "s"))
        action = None
        if control == "hook":  # the hook knows it is completed before the list does
            action = ("button", "Download")
        elif item.get("downloadable") and control == "again":
            action = ("link", "Download again")
        elif item.get("downloadable") and control == "link":
            action = ("link", "Download again" if item.get("delivered") or downloaded else "Download")
        return (job_id, status, created or "", created_ms, relative_time(created_ms, now), size, what,
                " · ".join(notes), action, status in FINISHED)

    def _describe(self, job_id: str, item: dict, total: int) -> str:
        key = (job_id, total)
        text = self._described.get(key)
        if text is None:
            text = self._described[key] = describe_options(_options(item), total)
        return text

    def _build_row(self, spec: tuple) -> Any:
        job_id, status, created, created_ms, when_text, size, what, notes, action, deletable = spec
        title = str(js.Date.new(created_ms).toLocaleString()) if created_ms else ""
        when = h("time", {"datetime": created, "title": title}, when_text)
        head = h("div", {"class_": "history-head"},
                 h("span", {"class_": f"badge badge-{status}", "text": HISTORY_STATUS_TEXT.get(status, status)}),
                 when,
                 h("span", {"class_": "history-size", "text": size}) if size else None)
        body = h("p", {"class_": "history-what", "text": what})
        note_el = h("p", {"class_": "history-note", "text": notes}) if notes else None
        actions = None
        if action is not None:
            kind, label = action
            if kind == "button":
                control = h("button", {"type": "button", "class_": "linkish",
                                       "data": {"action": "download", "job-id": job_id}}, label)
            else:
                control = h("a", {"class_": "button", "href": download_path(job_id), "download": True,
                                  "data": {"action": "download-link", "job-id": job_id},
                                  "aria-label": f"{label}: export of {when_text}"},
                            label)
            actions = h("div", {"class_": "history-actions"}, control)
        if deletable:  # R10: a finished export's archive can be deleted (frees the quota)
            remove = h("button", {"type": "button", "class_": "linkish",
                                  "data": {"action": "delete", "job-id": job_id},
                                  "aria-label": f"Delete the export of {when_text}"}, "Delete")
            if actions is None:
                actions = h("div", {"class_": "history-actions"})
            actions.append(remove)
        return h("li", {"class_": "history-item", "data": {"job-id": job_id, "status": status}},
                 head, body, note_el, actions)
