"""The page's own state as store signals, shared by its components.

Pure (no ``js``). It lives as long as the page, so a component that is unmounted and
mounted again (the export panel) finds the image selection, the form and the history as
it left them. The export itself is the hook's state (``app.export_hook``), not this.
"""
from __future__ import annotations

from typing import Any, Optional

from app.browser.options_form import FormValues, Validation, validate
from app.browser.texts import EtaEstimator
from app.models import ExportOptions
from app.store import Computed, Signal, computed, detached, signal

CONNECTION_STATES = ("online", "offline", "signed-out")


class PageState:
    """Signals of one page showing ``project`` (the ``GET /api/projects/{id}`` JSON).

    - ``selected``: ids of the chosen images (all at first);
    - ``form``: the options form (``FormValues``); ``validation``: its ``Validation``;
    - ``selection``: ``(images chosen, objects in them)``;
    - ``history``: the ``GET /api/projects/{id}/exports`` list, None until loaded;
      ``history_error``: why the last refresh failed ("" if it did not);
    - ``panel_open``: whether the export panel is mounted;
    - ``connection``: one of ``CONNECTION_STATES``;
    - ``last_options``: the options of the last export started here (for Retry);
    - ``downloaded_ids``: jobs this tab saw downloaded (so history says "Download again");
    - ``eta`` / ``eta_job``: the time-left estimate and the job it is for (kept here so
      the panel can be unmounted mid-export without losing it).
    """

    def __init__(self, project: dict, form: Optional[FormValues] = None) -> None:
        self.project = project
        self.images: list[dict] = list(project.get("images", []))
        self.all_ids: list[int] = [int(im["id"]) for im in self.images]
        self._objects = {int(im["id"]): int(im.get("object_count", 0)) for im in self.images}
        self.selected: Signal[frozenset[int]] = signal(frozenset(self.all_ids))
        self.form: Signal[FormValues] = signal(form or FormValues())
        self.history: Signal[Optional[list[dict]]] = signal(None)
        self.history_error: Signal[str] = signal("")
        self.panel_open: Signal[bool] = signal(True)
        self.connection: Signal[str] = signal("online")
        self.last_options: Signal[Optional[ExportOptions]] = signal(None)
        self.downloaded_ids: Signal[frozenset[str]] = signal(frozenset())
        self.eta = EtaEstimator()
        self.eta_job: Optional[str] = None
        self.validation: Computed[Validation] = detached(
            lambda: computed(lambda: validate(self.form.value, self.selected.value, self.all_ids)))
        self.selection: Computed[tuple[int, int]] = detached(lambda: computed(self._count))

    def _count(self) -> tuple[int, int]:
        chosen = self.selected.value
        return len(chosen), sum(self._objects.get(i, 0) for i in chosen)

    def select(self, image_id: int, on: bool) -> None:
        """Add or remove one image (unknown ids are ignored)."""
        if image_id not in self._objects:
            return
        current = self.selected.peek()
        self.selected.value = current | {image_id} if on else current - {image_id}

    def select_all(self) -> None:
        self.selected.value = frozenset(self.all_ids)

    def select_none(self) -> None:
        self.selected.value = frozenset()

    def update_form(self, change: Any) -> None:
        """``change(form) -> form``: apply an edit of the options form."""
        self.form.value = change(self.form.peek())

    def mark_downloaded(self, job_id: str) -> None:
        if job_id not in self.downloaded_ids.peek():
            self.downloaded_ids.value = self.downloaded_ids.peek() | {job_id}

    def selection_text(self) -> str:
        """``"3 of 12 images selected · 87 objects"`` (reads the signals)."""
        images, objects = self.selection.value
        total = len(self.all_ids)
        noun = "image" if total == 1 else "images"
        obj = "object" if objects == 1 else "objects"
        return f"{images} of {total} {noun} selected · {objects} {obj}"

    def dispose(self) -> None:
        self.validation.dispose()
        self.selection.dispose()
