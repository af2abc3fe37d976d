"""The export page: loads the project, mounts the export hook and the page's components,
and keeps the always-present parts of the page (body attributes, the live status line,
the connection banner, the project picker, the account menu) in step with the store.

Components (``app.browser.dom.Component``): ``ImagesView`` (selection grid),
``ExportPanel`` (options, actions, progress; the "Hide settings" button unmounts and
mounts it) and ``HistoryView`` (recent exports). They share a ``PageState``; the export
itself is the hook's (``ExportController``), so unmounting the panel never stops an export.

Test surface (stable): ``body[data-status|data-job-id|data-project-id|data-ready]``,
``body[data-connection]`` (online / offline / signed-out), the ids of ``index.html``, and
``window.cellhubLiveProxies()`` -> ``LiveProxies.count`` (read only).
"""
from __future__ import annotations

import asyncio
import traceback
from typing import Any, Callable, Optional

import js  # type: ignore[import-not-found]

from app.browser.adapters import browser_ports
from app.browser.connection import ConnectionMonitor
from app.browser.dom import Component, el, h, set_text
from app.browser.export_panel import ExportPanel
from app.browser.history_view import HistoryView
from app.browser.images_view import ImagesView
from app.browser.interop import LiveProxies, js_object
from app.browser.net import Unreachable, prefetched_json, request_json
from app.browser.options_form import encode_preferences, initial_form
from app.browser.page_state import PageState
from app.browser.empty_state import show_no_projects
from app.browser.export_delete import delete_export
from app.browser.project_gone import GoneSocket, show_project_gone
from app.browser.project_picker import fill_picker
from app.browser.share_panel import mount_access
from app.browser.texts import status_line
from app.browser.tokens_panel import TokensPanel
from app.export_hook import create_export_controller
from app.ports import Storage
from app.store import set_error_handler

PREFERENCES_KEY = "cellhub.page.options.v1"
"""localStorage key of the remembered export options (not the hook's ``cellhub.export.*``)."""
BOOT_RETRY_MS = (1000, 2000, 4000, 8000, 10000)

BANNER_TEXT = {
    "offline": "The server cannot be reached. Your settings are kept and the page reconnects by itself.",
    "signed-out": "Your session has ended.",
}


def _report(exc: BaseException, where: str) -> None:
    js.console.error(f"[cellhub] {where}: {''.join(traceback.format_exception(exc))}")


def signin_url(project_id: Optional[int] = None) -> str:
    """The sign-in page, returning to this project afterwards."""
    here = f"/?project={project_id}" if project_id is not None else f"{js.location.pathname}{js.location.search}"
    # encodeURIComponent rather than urllib.parse.quote: importing that module would cost
    # the page's boot more than this one call is worth.
    return f"/signin?next={js.encodeURIComponent(str(here))}"


def saved_preferences(storage: Storage) -> Optional[str]:
    """The remembered export options (``encode_preferences`` text), if storage can say."""
    try:
        return storage.get(PREFERENCES_KEY)
    except Exception:  # noqa: BLE001 - storage disabled by the browser
        return None


def save_preferences(storage: Storage, text: str) -> None:
    try:
        storage.set(PREFERENCES_KEY, text)
    except Exception:  # noqa: BLE001 - quota or privacy mode: preferences are a nicety
        pass


def show_banner(kind: str, project_id: Optional[int] = None) -> None:
    """Show (``offline``/``signed-out``) or hide (``online``) the connection banner."""
    banner = el("connection-banner")
    js.document.body.dataset.connection = kind
    if kind == "online":
        banner.hidden = True
        return
    set_text(el("connection-text"), BANNER_TEXT.get(kind, kind))
    link = el("connection-signin")
    link.hidden = kind != "signed-out"
    link.href = signin_url(project_id)
    el("connection-retry").hidden = kind != "offline"
    banner.hidden = False


async def load_project(project_id: int, prefetched: Any = None) -> Optional[dict]:
    """The project JSON, retrying (with the offline banner) while the server is away;
    None after redirecting to the sign-in page or when the project cannot be shown.
    ``prefetched``: the promise of the same request started by ``index.html`` (its answer
    is taken instead of asking again)."""
    attempt = 0
    while True:
        try:
            if prefetched is not None:
                first, prefetched = prefetched, None
                status, project = await prefetched_json(first)
            else:
                status, project = await request_json("GET", f"/api/projects/{project_id}")
        except Unreachable:
            show_banner("offline")
            set_text(el("export-status"), "Waiting for the server…")
            await asyncio.sleep(BOOT_RETRY_MS[min(attempt, len(BOOT_RETRY_MS) - 1)] / 1000)
            attempt += 1
            continue
        show_banner("online")
        if status == 401:
            js.location.assign(signin_url(project_id))
            return None
        if status != 200 or not isinstance(project, dict):
            set_text(el("export-status"), f"Could not load the project (HTTP {status}).")
            return None
        return project


async def fill_header(project_id: int, monitor_signed_out: Callable[[], None]) -> bool:
    """Fill the project picker and the account name; False when the server could not be
    reached (the page tries again when it is back)."""
    try:
        (status, projects), (s_status, session) = await asyncio.gather(
            request_json("GET", "/api/projects"), request_json("GET", "/api/session"))
    except Unreachable:
        return False
    if status == 200 and isinstance(projects, list) and projects:
        fill_picker(projects, project_id)
    if s_status == 200 and isinstance(session, dict) and session.get("username"):
        set_text(el("user-name"), str(session["username"]))
        el("sign-out").hidden = False
    elif s_status == 401:
        monitor_signed_out()
    return status == 200 and s_status == 200


class Page(Component):
    """The page of one project, as a ``Component`` adopting ``<body>``: ``mount()`` mounts
    the hook and the components and wires the always-present regions; ``unmount()`` (on
    ``pagehide``) undoes all of it."""

    def __init__(self, project: dict) -> None:
        super().__init__()
        self.project_id = int(project["id"])
        ports = browser_ports()
        ports.socket = GoneSocket(ports.socket, self.on_project_event)  # R9: project.* events are the page's
        self.storage = ports.storage
        self.state = PageState(project, initial_form(project.get("pixel_size_um"), saved_preferences(ports.storage)))
        self.controller, self.unmount_hook = create_export_controller(self.project_id, ports)
        self.images = ImagesView(self.state)
        self.panel = ExportPanel(self.state, self.controller)
        self.history = HistoryView(self.state, self.controller, self.refresh_history, self.delete_export)
        self.monitor = ConnectionMonitor(self.state, self.controller.socket_connected, self.on_back_online)
        self.history_seq = 0
        self.status_line = el("export-status")
        self.status_shown: tuple[Optional[str], Optional[str], Optional[str]] = (None, None, None)
        self.header_filled = False
        self.last_history_key: Optional[tuple] = None

    # -- lifecycle
    def build(self) -> Any:
        return js.document.body

    def setup(self) -> None:
        # Cleanups run in reverse: the monitor stops first, the page's state goes last.
        self.on_unmount(self.state.dispose)
        self.on_unmount(self.unmount_hook)
        grid_placeholder = el("image-grid")
        self.images.mount(grid_placeholder.parentElement, grid_placeholder)
        grid_placeholder.remove()
        self.on_unmount(self.images.unmount)
        el("boot-indicator").remove()
        self.set_panel(True)
        self.on_unmount(self.panel.unmount)
        self.history.mount(el("history-section"))
        self.on_unmount(self.history.unmount)
        self.tokens = TokensPanel()
        self.tokens.mount(el("tokens-slot"))
        self.on_unmount(self.tokens.unmount)
        self.effect(self.render_status)
        self.effect(self.render_connection)
        self.effect(self.follow_history, [self.controller.history_phase, self.controller.current_job])
        self.effect(self.keep_preferences, [self.state.validation])
        share = mount_access(self.state.project)
        if share is not None:
            self.on_unmount(share.unmount)
        self.monitor.start()
        self.on_unmount(self.monitor.stop)
        self.listen(el("panel-toggle"), "click", lambda event: self.set_panel(not self.panel.mounted))
        self.listen(el("connection-retry"), "click", lambda event: self.monitor.probe_now())
        self.listen(el("sign-out"), "click", lambda event: asyncio.ensure_future(self.sign_out()))
        el("panel-toggle").disabled = False
        counter = LiveProxies.make(lambda *args: LiveProxies.count)
        self.on_unmount(lambda: LiveProxies.destroy(counter))
        js.window.cellhubLiveProxies = counter
        asyncio.ensure_future(self.fill_header_async())
        asyncio.ensure_future(self.refresh_history_async())

    def set_panel(self, open_: bool) -> None:
        """Mount (``True``) or unmount the export panel; the toggle button says which."""
        toggle = el("panel-toggle")
        if open_:
            self.panel.mount(el("export-panel-slot"))
        else:
            self.panel.unmount()
        self.state.panel_open.value = self.panel.mounted
        toggle.setAttribute("aria-expanded", "true" if self.panel.mounted else "false")
        set_text(toggle, "Hide settings" if self.panel.mounted else "Show settings")

    # -- always-present regions
    def render_status(self) -> None:
        c = self.controller
        status = c.export_status.value
        job = c.current_job.value
        shown = (status, job.id if job is not None else "",
                 status_line(status, c.error_message.value, c.notice.value, job.message if job is not None else ""))
        # Runs on every progress event too: only a change costs JS calls.
        if shown == self.status_shown:
            return
        body = js.document.body
        if shown[0] != self.status_shown[0]:
            body.dataset.status = shown[0]
        if shown[1] != self.status_shown[1]:
            body.dataset.jobId = shown[1]
        if shown[2] != self.status_shown[2]:
            self.status_line.textContent = shown[2]
        self.status_shown = shown

    def render_connection(self) -> None:
        show_banner(self.state.connection.value, self.project_id)

    def follow_history(self) -> None:
        phase = self.controller.history_phase.peek()
        job = self.controller.current_job.peek()
        if phase == "downloaded" and job is not None:
            self.state.mark_downloaded(job.id)
        key = (job.id if job is not None else None, phase)
        if phase is None or key == self.last_history_key:
            return
        self.last_history_key = key
        self.refresh_history()

    def keep_preferences(self) -> None:
        validation = self.state.validation.peek()
        if validation.options is not None:
            save_preferences(self.storage, encode_preferences(validation.options))

    # -- the project may go (R9)
    def on_project_event(self, message: dict) -> None:
        if message.get("type") == "project.gone" and message.get("project_id") == self.project_id:
            self.gone()

    def gone(self) -> None:
        """The user may no longer see this project: stop everything, say so, link the rest."""
        if not self.mounted:
            return
        self.unmount()
        show_project_gone()

    def delete_export(self, job_id: str) -> None:
        async def run() -> None:
            problem = await delete_export(job_id)
            if problem:
                self.state.history_error.value = problem
            self.refresh_history()

        asyncio.ensure_future(run())

    # -- requests
    def on_back_online(self) -> None:
        """The server answers again: catch up on what could not be loaded meanwhile."""
        self.refresh_history()
        if not self.header_filled:
            asyncio.ensure_future(self.fill_header_async())

    async def fill_header_async(self) -> None:
        self.header_filled = await fill_header(self.project_id, self.monitor.report_signed_out)

    def refresh_history(self) -> None:
        asyncio.ensure_future(self.refresh_history_async())

    async def refresh_history_async(self) -> None:
        self.history_seq += 1
        seq = self.history_seq
        try:
            status, body = await request_json("GET", f"/api/projects/{self.project_id}/exports")
        except Unreachable:
            if seq == self.history_seq:
                self.state.history_error.value = "Recent exports cannot be loaded while the server is unreachable."
                self.monitor.report_unreachable()
            return
        if seq != self.history_seq:
            return  # a newer refresh was started; its answer wins
        if status == 401:
            self.monitor.report_signed_out()
            return
        if status == 404:
            self.gone()
            return
        if status != 200 or not isinstance(body, list):
            self.state.history_error.value = f"Recent exports could not be loaded (HTTP {status})."
            return
        self.state.history_error.value = ""
        self.state.history.value = body

    async def sign_out(self) -> None:
        try:
            await request_json("DELETE", "/api/session")
        except Unreachable:
            self.monitor.report_unreachable()
            return
        js.location.assign("/signin?signed_out=1")


async def start_page(prefetched_project: Any = None) -> None:
    """Boot the page (called by ``app.browser.boot`` once the wheels are loaded);
    ``prefetched_project``: see ``load_project``."""
    set_error_handler(_report)
    body = js.document.body
    raw = str(body.dataset.projectId or "")
    if not raw.isdigit():
        show_no_projects()
        body.dataset.ready = "true"
        return
    project = await load_project(int(raw), prefetched_project)
    if project is None:
        el("boot-indicator").hidden = True
        return
    page = Page(project)
    page.mount()

    def on_pagehide(event: Any) -> None:
        page.unmount()

    js.window.addEventListener("pagehide", LiveProxies.make(on_pagehide), js_object({"once": True}))
    el("main").removeAttribute("aria-busy")
    body.dataset.ready = "true"
