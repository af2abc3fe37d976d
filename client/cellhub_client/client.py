"""``Client``: the hub's exports from Python (CPython or Pyodide).

``export`` is the whole flow with the page's guarantees: it starts with a start token (a
retry after a lost answer gets the same job, R1), follows progress, downloads through a
temporary name and verifies the archive before the final rename. Ctrl+C
(``KeyboardInterrupt``) anywhere in it cancels the export on the server, waits for the
answer, leaves no partial file and raises ``ExportInterrupted`` (a ``KeyboardInterrupt``)
saying what the server said; "already downloaded" means the server had started sending
the file (R4: delivered), so the export could no longer be cancelled.
"""
from __future__ import annotations

import os
import secrets
from typing import Any, Optional

from pydantic import ValidationError

from cellhub_client.download import Download, download_job
from cellhub_client.errors import (AlreadyDownloaded, CellhubError, Conflict, ExportActive, ExportFailed,
                                   ExportInterrupted, Gone, InvalidRequest, for_answer)
from cellhub_client.follow import follow_job, read_job
from cellhub_client.progress import ProgressCallback, silent
from cellhub_client.shared.models import ExportJob, ExportOptions
from cellhub_client.shared.routes import (cancel_path, history_path, project_path, projects_path,
                                          start_path)
from cellhub_client.transport import Transport

__version__ = "0.1.0"
TOKEN_VARIABLE = "CELLHUB_TOKEN"

Options = ExportOptions | dict[str, Any] | None


def new_start_token() -> str:
    """A fresh start token (R1: 1-64 of ``A-Za-z0-9._-``)."""
    return "py-" + secrets.token_urlsafe(18)


def export_options(options: Options) -> ExportOptions:
    """``options`` validated by the page's own model (``None``: the defaults);
    ``InvalidRequest`` naming each field otherwise, before anything is sent."""
    if isinstance(options, ExportOptions):
        return options
    try:
        return ExportOptions.model_validate(options or {})
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc) from None


class Client:
    """The exports of one hub (``url``) as the user of a personal API token (``token``,
    default: the ``CELLHUB_TOKEN`` environment variable). ``timeout``: seconds per request;
    ``retry_for``: how long a request is retried while the hub does not answer;
    ``use_websocket``: follow progress on the WebSocket where possible (else polling)."""

    def __init__(self, url: str, token: Optional[str] = None, *, timeout: float = 30.0, retry_for: float = 60.0,
                 use_websocket: bool = True) -> None:
        token = token if token is not None else os.environ.get(TOKEN_VARIABLE)
        self.transport = Transport(url, token, timeout=timeout, retry_for=retry_for,
                                   user_agent=f"cellhub-client/{__version__}")
        self.use_websocket = use_websocket

    # --- reads ------------------------------------------------------------------------
    def projects(self) -> list[dict[str, Any]]:
        """The projects this user may see: ``[{id, name, description, image_count, ...}]``."""
        return self.transport.json("GET", projects_path())

    def project(self, project_id: int) -> dict[str, Any]:
        """One project with its ``images`` (id, file_name, width, height, object_count)."""
        return self.transport.json("GET", project_path(project_id))

    def jobs(self, project_id: int) -> list[ExportJob]:
        """This user's recent exports of the project, newest first."""
        return [ExportJob.model_validate(item) for item in self.transport.json("GET", history_path(project_id))]

    def job(self, job_id: str) -> ExportJob:
        return read_job(self.transport, job_id)

    # --- changes ----------------------------------------------------------------------
    def start_export(self, project_id: int, options: Options = None, *, start_token: Optional[str] = None) -> ExportJob:
        """Start an export (202); repeating a ``start_token`` gets the job it made first.
        ``ExportActive`` (with the running ``job``) when another export of the project runs."""
        body = export_options(options).model_dump(mode="json")
        response = self.transport.send("POST", start_path(project_id, start_token or new_start_token()), body)
        data = _json(response)
        if response.status_code in (200, 202):
            return ExportJob.model_validate(data)
        error = for_answer(response.status_code, data)
        if response.status_code == 409 and error.job is not None:
            raise ExportActive(error.message, 409, error.job)
        raise error

    def cancel(self, job_id: str) -> ExportJob:
        """Cancel (R2): the job, now cancelled (a cancelled one stays so).
        ``AlreadyDownloaded`` once the server has delivered it; ``Conflict`` if it ended otherwise."""
        return ExportJob.model_validate(self.transport.json("POST", cancel_path(job_id)))

    def wait(self, job: ExportJob | str, progress: ProgressCallback = silent) -> ExportJob:
        """Follow the job until it ends (``progress`` gets each change); the ended job."""
        current = job if isinstance(job, ExportJob) else self.job(job)
        return follow_job(self.transport, current, progress, self.use_websocket)

    def download(self, job_id: str, path: str | os.PathLike, progress: ProgressCallback = silent) -> Download:
        """Download the completed export to ``path`` (verified, resumed if cut; see
        ``cellhub_client.download``). A delivered export may be downloaded again."""
        return download_job(self.transport, _completed(self.job(job_id)), path, progress)

    def export(self, project_id: int, options: Options = None, path: str | os.PathLike = "export.zip",
               progress: ProgressCallback = silent) -> Download:
        """Start, follow and download one export to ``path``; see the module docstring."""
        chosen = export_options(options)
        token = new_start_token()
        job: Optional[ExportJob] = None
        try:
            job = self._start_or_attach(project_id, chosen, token)
            ended = self.wait(job, progress)
            return download_job(self.transport, _completed(ended), path, progress)
        except KeyboardInterrupt:
            raise self._interrupted(project_id, chosen, token, job) from None

    # --- the export's parts -----------------------------------------------------------
    def _start_or_attach(self, project_id: int, options: ExportOptions, token: str) -> ExportJob:
        """Start; an export of the project already running with the same options is the one
        asked for (as a second tab attaches, R1), one with other options is ``ExportActive``."""
        try:
            return self.start_export(project_id, options, start_token=token)
        except ExportActive as busy:
            if busy.job is not None and busy.job.options == options:
                return busy.job
            raise

    def _interrupted(self, project_id: int, options: ExportOptions, token: str,
                     job: Optional[ExportJob]) -> ExportInterrupted:
        """Cancel what this export made and say how it ended. Without the start's answer, the
        start is asked for again with the same token: the server answers with the job the first
        request made (or makes it now), so the cancel names it whatever happened to that answer.
        An export this call attached to (started elsewhere) is left running."""
        try:
            if job is None:
                try:
                    job = self.start_export(project_id, options, start_token=token)
                except ExportActive:
                    return ExportInterrupted(None, "not started", "Interrupted before the export started.")
            if job.start_token != token:
                return ExportInterrupted(job.id, "left running", f"Interrupted; export {job.id} was started elsewhere "
                                         "(the page, another script) and goes on.")
            self.cancel(job.id)
        except AlreadyDownloaded:
            return ExportInterrupted(job.id if job else None, "already downloaded",
                                     f"Interrupted: export {job.id if job else ''} was already downloaded (the server "
                                     "had started sending it), so it could not be cancelled; no file was kept here.")
        except (Conflict, Gone) as ended:
            return ExportInterrupted(job.id if job else None, "already ended",
                                     f"Interrupted: the export had already ended ({ended.message}).")
        except CellhubError as lost:
            return ExportInterrupted(job.id if job else None, "unconfirmed",
                                     f"Interrupted, but the cancel was not confirmed: {lost.message}")
        return ExportInterrupted(job.id, "cancelled",
                                 f"Interrupted: export {job.id} was cancelled on the server; no file was kept.")


def _completed(job: ExportJob) -> ExportJob:
    """``job`` if it is completed; the error that says why there is no archive otherwise."""
    if job.status == "completed":
        return job
    if job.status in ("queued", "running"):
        raise Conflict("the export is not finished yet", 409, job)
    if job.status == "expired":
        raise Gone(f"export {job.id} has expired; its archive is gone", 410, job)
    raise ExportFailed(f"export {job.id} {job.status}: {job.message}".rstrip(": "), None, job)


def _json(response: Any) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None
