"""The export panel: options form, actions and progress, as a mountable ``Component``.

Its DOM is a clone of ``<template id="export-panel-template">`` in ``index.html``; the
format choices and the numeric ranges come from ``app.browser.options_form`` (hence from
the shared pydantic model). Everything it shows is read from the store inside effects:
the form and the selection (``PageState``) and the export hook (``ExportController``).
Four delegated listeners (input, change, submit, click) and, while an export runs, a
one-second ticker are its only JS proxies; ``unmount()`` releases all of them.
"""
from __future__ import annotations

from typing import Any, Optional

import js  # type: ignore[import-not-found]

from app.browser.dom import Component, attr, every, h, set_text
from app.browser.interop import is_missing
from app.browser.options_form import ANNOTATION_FORMATS, METRICS_FORMATS, field_bounds, range_text
from app.browser.page_state import PageState
from app.browser.texts import (
    format_bytes, format_duration, job_duration_ms, parse_iso_ms, stage_text, time_left_text,
)
from app.machine.state import ACTIVE
from app.models import ExportOptions
from app.store import signal

ACTION_IDS = ("cancel-button", "download-button", "retry-button", "dismiss-button", "export-button")
FOCUS_AFTER = ("download-button", "retry-button", "dismiss-button", "export-button")
"""Where focus goes when the focused action disappears: the safest useful next step, else the
progress block. Never Cancel: an export started in another tab disables this tab's focused
Export button, and a second Enter there must not cancel what the user did not start here."""

TEXT_FIELDS = {  # input id -> (FormValues field, error path)
    "pixel-size": ("pixel_size", "pixel_size_um"),
    "stroke-width": ("stroke_width", "visualization.stroke_width"),
    "font-size": ("font_size", "visualization.font_size"),
    "opacity": ("opacity", "visualization.opacity"),
    "outline-color": ("outline_color", "visualization.outline_color"),
    "hole-color": ("hole_color", "visualization.hole_color"),
}
NUMERIC_PATHS = frozenset({"pixel_size_um", "visualization.stroke_width", "visualization.font_size",
                           "visualization.opacity"})
CHECK_FIELDS = {  # input id -> FormValues field
    "include-images": "include_images",
    "include-visualizations": "include_visualizations",
    "show-numbers": "show_numbers",
}


def _job_elapsed_ms(job: Any, now_ms: float) -> Optional[float]:
    start = parse_iso_ms(getattr(job, "created_at", None))
    return None if start is None else max(0.0, now_ms - start)


def opacity_text(raw: str) -> str:
    """``"0.75"`` -> ``"75%"``; the raw text when it is not a number."""
    try:
        return f"{round(float(raw) * 100)}%"
    except ValueError:
        return raw


class ExportPanel(Component):
    """The options/actions/progress panel of ``state``'s project, driving ``controller``
    (an ``app.export_hook.ExportController``)."""

    def __init__(self, state: PageState, controller: Any) -> None:
        super().__init__()
        self.state = state
        self.controller = controller
        self.now = signal(float(js.Date.now()))

    # ------------------------------------------------------------------ DOM
    def build(self) -> Any:
        template = js.document.getElementById("export-panel-template")
        root = template.content.firstElementChild.cloneNode(True)
        for group, table in (("annotation_formats", ANNOTATION_FORMATS), ("metrics_formats", METRICS_FORMATS)):
            box = root.querySelector(f'[data-choices="{group}"]')
            prefix = "fmt" if group == "annotation_formats" else "met"
            for value, label, description in table:
                input_id = f"{prefix}-{value}"
                box.append(h("div", {"class_": "choice"},
                             h("input", {"type": "checkbox", "id": input_id, "name": group, "value": value,
                                         "aria-describedby": f"desc-{input_id}"}),
                             h("label", {"for": input_id, "text": label}),
                             h("p", {"id": f"desc-{input_id}", "class_": "desc", "text": description})))
        for input_id, (_, path) in TEXT_FIELDS.items():
            if path not in NUMERIC_PATHS:
                continue
            hint = root.querySelector(f"#hint-{input_id}")
            if not is_missing(hint):
                prefix, suffix = attr(hint, "data-prefix"), attr(hint, "data-suffix")
                hint.textContent = f"{prefix}{range_text(path)}{suffix}"
            node = root.querySelector(f"#{input_id}")
            if str(node.type) in ("number", "range"):
                low, high = field_bounds(path)
                node.min, node.max = f"{low:g}", f"{high:g}"
        return root

    def _input(self, input_id: str) -> Any:
        return self.root.querySelector(f"#{input_id}")

    # ------------------------------------------------------------------ wiring
    def setup(self) -> None:
        self._actions = {action_id: self.find(f"#{action_id}") for action_id in ACTION_IDS}
        self._shown: dict = {}
        form = self.find("#export-form")
        self.listen(form, "input", self._on_edit)
        self.listen(form, "change", self._on_edit)
        self.listen(form, "submit", self._on_submit)
        self.listen(self.find(".actions"), "click", self._on_action)
        self.effect(self._render_form)
        self.effect(self._render_errors)
        self.effect(self._render_actions)
        self.effect(self._render_progress, later=True)
        self.effect(self._ticker, [self.controller.is_exporting])

    def _on_edit(self, event: Any) -> None:
        target = event.target
        name, input_id = attr(target, "name"), attr(target, "id")
        if name in ("annotation_formats", "metrics_formats"):
            value, on = str(target.value), bool(target.checked)
            self.state.update_form(lambda f: f.with_format(name, value, on))
        elif input_id in CHECK_FIELDS:
            field, on = CHECK_FIELDS[input_id], bool(target.checked)
            self.state.update_form(lambda f: f.with_value(field, on))
        elif input_id in TEXT_FIELDS:
            field, text = TEXT_FIELDS[input_id][0], str(target.value)
            self.state.update_form(lambda f: f.with_value(field, text))

    def _on_submit(self, event: Any) -> None:
        event.preventDefault()
        self.start()

    def start(self) -> None:
        """Start an export with the form's options, or point at the first problem."""
        validation = self.state.validation.peek()
        if validation.options is None:
            self._focus_first_error(validation.errors)
            return
        if self.controller.is_exporting.peek() or self.controller.busy.peek():
            return
        self._start_with(validation.options)

    def _start_with(self, options: ExportOptions) -> None:
        self.state.last_options.value = options
        self.state.eta.reset()
        self.controller.start_export(options)
        block = self.find("#progress-block")
        block.hidden = False
        block.focus()  # keyboard users land on the progress, not on Cancel (a second Enter must not cancel)

    def _on_action(self, event: Any) -> None:
        button = event.target.closest("button")
        if is_missing(button) or bool(button.disabled):
            return
        action = attr(button, "id")
        if action == "cancel-button":
            self.controller.cancel_export()
        elif action == "download-button":
            job_id = self.controller.completed_job_id.peek()
            if job_id:
                self.controller.download(job_id)
        elif action == "dismiss-button":
            self.controller.dismiss()
        elif action == "retry-button":
            self._start_with(self.retry_options())

    def retry_options(self) -> ExportOptions:
        """The options of the failed export: the job's own, else those last started here,
        else the form's."""
        job = self.controller.current_job.peek()
        if job is not None:
            return job.options
        if self.state.last_options.peek() is not None:
            return self.state.last_options.peek()
        return self.state.validation.peek().options or ExportOptions()

    def _focus_first_error(self, errors: dict[str, str]) -> None:
        for input_id, (_, path) in TEXT_FIELDS.items():
            if path in errors:
                self._input(input_id).focus()
                return
        if "formats" in errors:
            self._input("fmt-coco").focus()
        elif "image_ids" in errors:
            js.document.getElementById("select-all").focus()

    def _ticker(self) -> Any:
        if not self.controller.is_exporting.value:
            return None

        def tick() -> None:
            self.now.value = float(js.Date.now())

        return every(1000, tick)

    # ------------------------------------------------------------------ rendering
    def _render_form(self) -> None:
        values = self.state.form.value
        for group in ("annotation_formats", "metrics_formats"):
            chosen = getattr(values, group)
            for box in self.root.querySelectorAll(f'input[name="{group}"]'):
                want = str(box.value) in chosen
                if bool(box.checked) != want:
                    box.checked = want
        for input_id, field in CHECK_FIELDS.items():
            node = self._input(input_id)
            want = bool(getattr(values, field))
            if bool(node.checked) != want:
                node.checked = want
        for input_id, (field, _) in TEXT_FIELDS.items():
            node = self._input(input_id)
            want = str(getattr(values, field))
            if str(node.value) != want:
                node.value = want
        style = self.find("#overlay-style")
        style.disabled = style.hidden = not values.include_visualizations  # shown only when it matters
        set_text(self.find("#opacity-value"), opacity_text(values.opacity))

    def _render_errors(self) -> None:
        validation = self.state.validation.value
        errors = validation.errors
        for input_id, (_, path) in TEXT_FIELDS.items():
            node = self._input(input_id)
            message = errors.get(path, "")
            slot = self.find(f"#error-{input_id}")
            set_text(slot, message)
            slot.hidden = not message
            if message:
                node.setAttribute("aria-invalid", "true")
            else:
                node.removeAttribute("aria-invalid")
        formats = self.find("#error-formats")
        set_text(formats, errors.get("formats", ""))
        formats.hidden = "formats" not in errors
        blocker = self.find("#export-blocker")
        if len(errors) == 1:
            set_text(blocker, validation.first or "")
        elif errors:
            set_text(blocker, f"Fix the {len(errors)} problems marked above to export.")
        else:
            set_text(blocker, "")
        blocker.hidden = not errors

    def _render_actions(self) -> None:
        c = self.controller
        status = c.export_status.value
        exporting = c.is_exporting.value
        busy = c.busy.value
        valid = self.state.validation.value.ok
        wanted = {
            ("export-button", "disabled"): (not valid) or exporting or busy,
            ("export-button", "textContent"): "Export again" if status in ("downloaded", "cancelled") else "Export",
            ("cancel-button", "hidden"): not c.can_cancel.value,
            ("download-button", "hidden"): not c.can_download.value,
            ("dismiss-button", "hidden"): not c.can_dismiss.value,
            ("retry-button", "hidden"): status != "failed",
        }
        # Only what changed is written (this runs on every change of the export state, in
        # the task that handles it, so each JS call counts).
        changes = [(key, value) for key, value in wanted.items() if self._shown.get(key) != value]
        if not changes and self._shown.get("state") == (status, exporting):
            return
        # Read before writing: hiding the focused button moves focus to the body at once.
        active = js.document.activeElement
        focused_id = "" if is_missing(active) else str(active.id or "")
        for (node_id, prop), value in changes:
            setattr(self._actions[node_id], prop, value)
            self._shown[(node_id, prop)] = value
        self._shown["state"] = (status, exporting)
        self._keep_focus(focused_id, exporting or busy, c.shows_progress.value)

    def _keep_focus(self, focused_id: str, working: bool, progress_shown: bool) -> None:
        """Move focus on when the focused action (or the progress, once nothing is under
        way) has just gone."""
        if focused_id in ACTION_IDS or focused_id == "progress-block":
            current = self.find(f"#{focused_id}")
            gone = bool(current.hidden) or bool(getattr(current, "disabled", False))
            if focused_id == "progress-block":
                gone = not working
            if gone:
                for candidate in FOCUS_AFTER:
                    node = self._actions[candidate]
                    if not bool(node.hidden) and not bool(node.disabled):
                        node.focus()
                        break
                else:
                    if progress_shown:
                        # Shown now: its own render runs in a later task (app.browser.later).
                        block = self.find("#progress-block")
                        block.hidden = False
                        block.focus()  # e.g. Cancel pressed: nothing to press until the answer

    def _render_progress(self) -> None:
        c = self.controller
        status = c.export_status.value
        job = c.current_job.value
        progress = float(c.export_progress.value or 0.0)
        self.now.value  # re-render on each tick of the ticker
        now = float(js.Date.now())  # but measure with the real clock: events arrive between ticks
        block = self.find("#progress-block")
        block.hidden = not c.shows_progress.value
        block.dataset.status = status
        pct = int(round(progress))
        bar = self.find("#progress-bar")
        bar.value = pct
        set_text(self.find("#progress-label"), f"{pct}%")
        active = c.in_flight.value
        eta = self.state.eta
        if job is not None and status == "running":
            if self.state.eta_job != job.id:
                eta.reset()
                self.state.eta_job = job.id
            eta.observe(now, progress)
        stage = stage_text(job.stage) if job is not None and active else ""
        if status == "starting":
            stage = "Sending the request"
        set_text(self.find("#progress-stage"), stage)
        message = job.message if job is not None and status in ACTIVE else ""
        set_text(self.find("#progress-message"), message)
        elapsed = _job_elapsed_ms(job, now) if job is not None and active else None
        set_text(self.find("#progress-elapsed"), f"Elapsed {format_duration(elapsed)}" if elapsed is not None else "")
        left = time_left_text(eta.remaining_ms(now), progress) if status == "running" else ""
        set_text(self.find("#progress-eta"), left)
        summary = ""
        finished = c.completed_job_id.value is not None
        if job is not None and finished:
            # Socket events carry no size or finish time; the history has them.
            record = next((item for item in self.state.history.value or [] if item.get("id") == job.id), {})
            size = job.size_bytes if job.size_bytes is not None else record.get("size_bytes")
            bits = []
            if size is not None:
                bits.append(f"Archive {format_bytes(size)}")
            took = job_duration_ms(job) if job.finished_at else job_duration_ms(record)
            if took is not None:
                bits.append(f"made in {format_duration(took)}")
            summary = ", ".join(bits) + ("." if bits else "")
        set_text(self.find("#progress-summary"), summary)
        warnings = []
        if job is not None and finished:
            warnings = list(job.warnings) or list(record.get("warnings") or [])
        details = self.find("#progress-warnings")
        details.hidden = not warnings
        if warnings:
            set_text(details.querySelector("summary"),
                     f"{len(warnings)} warning" + ("" if len(warnings) == 1 else "s"))
            listing = details.querySelector("ul")
            listing.replaceChildren(*[h("li", {"text": w}) for w in warnings])
