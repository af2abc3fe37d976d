"""The export page: fetches the project, renders the image grid, mounts the export hook
and keeps the DOM in step with its signals through store effects.

Rendering is one effect per region; each reads the signals it shows when it runs, so
nothing renders from a stale value. Handlers are proxies created once and destroyed on
``unload``.
"""
from __future__ import annotations

import json
from typing import Any

import js  # type: ignore[import-not-found]

from app.browser.adapters import LiveProxies, browser_ports
from app.export_hook import create_export_controller
from app.models import ExportOptions
from app.store import effect

STATUS_TEXT = {
    "idle": "Ready to export.",
    "starting": "Starting the export…",
    "queued": "Export queued…",
    "running": "Exporting…",
    "cancelling": "Cancelling…",
    "cancelled": "Export cancelled.",
    "completed": "Export ready.",
    "downloading": "Downloading…",
    "downloaded": "Downloaded.",
    "failed": "Export failed.",
}


def el(element_id: str) -> Any:
    return js.document.getElementById(element_id)


async def fetch_json(path: str) -> tuple[int, Any]:
    response = await js.fetch(path)
    text = await response.text()
    try:
        return int(response.status), json.loads(text) if text else None
    except ValueError:
        return int(response.status), None


def render_images(project: dict) -> None:
    grid = el("image-grid")
    grid.replaceChildren()
    for image in project["images"]:
        item = js.document.createElement("li")
        img = js.document.createElement("img")
        img.src = f"/api/projects/{project['id']}/images/{image['id']}/thumbnail"
        img.alt = f"{image['file_name']} ({image['object_count']} objects)"
        img.loading = "lazy"
        caption = js.document.createElement("span")
        caption.textContent = f"{image['file_name']} · {image['object_count']} objects"
        item.append(img, caption)
        grid.append(item)
    el("image-summary").textContent = (
        f"{len(project['images'])} images, {project['object_count']} segmented objects"
    )


def status_line(status: str, job: Any, progress: float, error: str) -> str:
    text = STATUS_TEXT.get(status, status)
    if status in ("running", "queued") and job is not None and job.message:
        text = f"{text} {job.message}"
    if status == "failed":
        detail = error or (job.message if job is not None else "")
        text = f"Export failed: {detail}" if detail else text
    return text


async def start_page() -> None:
    body = js.document.body
    project_id = int(body.dataset.projectId or 0)
    status, project = await fetch_json(f"/api/projects/{project_id}")
    if status == 401:
        js.location.assign("/signin")
        return
    if status != 200 or project is None:
        el("export-status").textContent = f"Could not load the project (HTTP {status})."
        return
    render_images(project)

    ports = browser_ports()
    controller, unmount = create_export_controller(project_id, ports)

    def on_export(event: Any) -> None:
        controller.start_export(ExportOptions(annotation_formats=["coco"]))

    def on_cancel(event: Any) -> None:
        controller.cancel_export()

    def on_download(event: Any) -> None:
        job_id = controller.completed_job_id.value
        if job_id:
            controller.download(job_id)

    def on_dismiss(event: Any) -> None:
        controller.dismiss()

    handlers = {
        "export-button": LiveProxies.make(on_export),
        "cancel-button": LiveProxies.make(on_cancel),
        "download-button": LiveProxies.make(on_download),
        "dismiss-button": LiveProxies.make(on_dismiss),
    }
    for element_id, proxy in handlers.items():
        el(element_id).addEventListener("click", proxy)

    def render() -> None:
        state = controller.export_status.value
        job = controller.current_job.value
        progress = controller.export_progress.value
        exporting = controller.is_exporting.value
        error = controller.error_message.value
        body.dataset.status = state
        body.dataset.jobId = job.id if job is not None else ""
        el("export-status").textContent = status_line(state, job, progress, error)
        el("export-button").disabled = exporting or state in ("starting", "cancelling", "downloading")
        el("cancel-button").hidden = not controller.can_cancel.value
        el("download-button").hidden = not controller.can_download.value
        el("dismiss-button").hidden = not controller.can_dismiss.value
        notice = controller.notice.value
        if notice:
            el("export-status").textContent = f"{el('export-status').textContent} {notice}"
        block = el("progress-block")
        block.hidden = state in ("idle",)
        pct = int(round(progress or 0))
        el("progress-bar").value = pct
        el("progress-label").textContent = f"{pct}%"
        el("progress-stage").textContent = (job.stage if job is not None else "") if exporting else ""

    dispose_render = effect(render)

    def on_unload(event: Any) -> None:
        dispose_render()
        unmount()
        for element_id, proxy in handlers.items():
            el(element_id).removeEventListener("click", proxy)
            LiveProxies.destroy(proxy)

    js.window.addEventListener("pagehide", LiveProxies.make(on_unload))
    el("export-button").disabled = controller.is_exporting.value
    body.dataset.ready = "true"
