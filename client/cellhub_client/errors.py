"""What can go wrong, as exceptions a script can catch one by one.

Every error of the client is a ``CellhubError`` whose text is one readable sentence (the
server's own ``detail``, read with the page's ``error_text``). HTTP answers map to
subclasses by status (``for_answer``); ``InvalidRequest.problems`` holds the R8 items
``[{"field", "reason"}]``, also for options refused before anything is sent. A
``KeyboardInterrupt`` during ``Client.export`` becomes ``ExportInterrupted``, still a
``KeyboardInterrupt``, saying what the server answered to the cancel it caused.
"""
from __future__ import annotations

from typing import Any, Optional

from cellhub_client.shared.errors import error_text, validation_errors
from cellhub_client.shared.models import ExportJob


class CellhubError(Exception):
    """A request the hub refused or could not answer. ``status``: the HTTP status, if any;
    ``job``: the export it is about, when the answer named one."""

    def __init__(self, message: str, status: Optional[int] = None, job: Optional[ExportJob] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.job = job


class Unreachable(CellhubError):
    """No answer from the hub (network down, server stopped) within the client's patience."""


class AuthenticationFailed(CellhubError):
    """401: no token, or an unknown, revoked or expired one (the message says which)."""


class Forbidden(CellhubError):
    """403."""


class NotFound(CellhubError):
    """404: no such project or export, or one this user may not see."""


class InvalidRequest(CellhubError):
    """422 (or options refused before sending): ``problems`` is ``[{"field", "reason"}]``."""

    def __init__(self, message: str, problems: list[dict[str, str]], status: Optional[int] = 422) -> None:
        super().__init__(message, status)
        self.problems = problems

    @classmethod
    def from_validation(cls, exc: Any) -> "InvalidRequest":
        """From a ``pydantic.ValidationError`` of the shared options model: the same items the
        server would answer."""
        body = validation_errors(exc)
        return cls(error_text(body, 422), body["detail"], status=None)


class Conflict(CellhubError):
    """409."""


class AlreadyDownloaded(Conflict):
    """409 "already downloaded": the server delivered this export, so it cannot be cancelled."""


class ExportActive(Conflict):
    """409 on start: another export of this project is running (``job``)."""


class Gone(CellhubError):
    """410: the export was cancelled or has expired; its archive is gone."""


class ServerRefused(CellhubError):
    """Another 4xx (429 too many exports, 507 quota, ...)."""


class ServerError(CellhubError):
    """5xx that persisted through the client's retries."""


class ExportFailed(CellhubError):
    """The export ended without an archive: failed, cancelled (elsewhere) or expired (``job``)."""


class ArchiveCorrupt(CellhubError):
    """The downloaded file is not the archive the server described: its SHA-256 differs from
    the ``ETag``, or a member differs from ``metadata.json``. Nothing was kept."""


class ExportInterrupted(KeyboardInterrupt):
    """Ctrl+C during ``Client.export``: the cancel was sent and answered (``outcome``), any
    partial file removed. ``outcome``: ``"cancelled"``, ``"already downloaded"`` (the server
    had started delivering the file: it cannot be cancelled, nothing was kept here),
    ``"already ended"``, ``"not started"``, ``"left running"`` (the export was started
    elsewhere and only attached to) or ``"unconfirmed"`` (the hub did not answer)."""

    def __init__(self, job_id: Optional[str], outcome: str, message: str) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.outcome = outcome
        self.message = message

    def __str__(self) -> str:
        return self.message


_BY_STATUS: dict[int, type[CellhubError]] = {401: AuthenticationFailed, 403: Forbidden, 404: NotFound,
                                              409: Conflict, 410: Gone}


def for_answer(status: int, body: Any) -> CellhubError:
    """The error for a refused answer (``status`` >= 400, ``body`` its parsed JSON or None)."""
    message = error_text(body, status)
    job = _job_of(body)
    if status == 422:
        detail = body.get("detail") if isinstance(body, dict) else None
        problems = detail if isinstance(detail, list) else [{"field": "", "reason": message}]
        return InvalidRequest(message, problems, status)
    if status == 409 and message == "already downloaded":
        return AlreadyDownloaded(message, status, job)
    if status >= 500:
        return ServerError(message, status, job)
    return _BY_STATUS.get(status, ServerRefused)(message, status, job)


def _job_of(body: Any) -> Optional[ExportJob]:
    if isinstance(body, dict) and isinstance(body.get("job"), dict):
        try:
            return ExportJob.model_validate(body["job"])
        except ValueError:
            return None
    return None
