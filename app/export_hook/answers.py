"""What the server's answers mean to the machine: pure functions from an HTTP answer (or a
WebSocket message) to the event the hook dispatches. Tested on their own, table-driven
(``tests/core/test_answers.py``).

``MALFORMED`` is the message of the event made of an answer whose job does not parse; the
hook warns about it on the console.
"""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import ValidationError

from app.errors import error_text
from app.machine import CancelAnswered, FetchFailed, JobUpdate, StartAccepted, StartFailed, Update
from app.models import ExportEvent, ExportJob
from app.ports import HttpResponse

MALFORMED = "malformed answer"
NO_ANSWER = "network error"


def parse_job(body: Any) -> Optional[ExportJob]:
    """The job JSON in ``body``, or None when it is not one."""
    try:
        return ExportJob.model_validate(body)
    except ValidationError:
        return None


def _body(resp: HttpResponse) -> dict:
    return resp.body if isinstance(resp.body, dict) else {}


def start_answer(resp: HttpResponse) -> Union[StartAccepted, StartFailed]:
    """POST start: 2xx with the job -> accepted; 409 with the active job -> attached (R1);
    5xx -> a failure worth a retry, except 507 (the user's archive quota, R10: asking again
    cannot help until they delete exports); any other answer -> a failure naming the server's
    reason."""
    if resp.status in (200, 201, 202):
        job = parse_job(resp.body)
        return StartAccepted(job) if job is not None else StartFailed(MALFORMED, retryable=True)
    active = parse_job(_body(resp).get("job")) if resp.status == 409 else None
    if active is not None:
        return StartAccepted(active, conflict=True)
    return StartFailed(error_text(resp.body, resp.status), retryable=resp.status >= 500 and resp.status != 507)


def cancel_answer(resp: HttpResponse) -> CancelAnswered:
    """POST cancel (C2, R2): 200 -> ``ok``; 409 of a delivered job (or saying "download") ->
    ``downloaded``; 409 of a job already cancelled -> ``ok``; other 409 -> ``refused``;
    404/410 -> ``gone``; 5xx -> ``retry``; other 4xx -> ``refused``."""
    detail = error_text(resp.body, resp.status)
    if resp.status == 200:
        return CancelAnswered("ok", parse_job(resp.body))
    if resp.status == 409:
        job = parse_job(_body(resp).get("job"))
        if (job is not None and job.delivered) or "download" in detail.lower():
            return CancelAnswered("downloaded", job, detail)
        if job is not None and job.status == "cancelled":
            return CancelAnswered("ok", job)
        return CancelAnswered("refused", job, detail)
    if resp.status in (404, 410):
        return CancelAnswered("gone", None, detail)
    return CancelAnswered("retry" if resp.status >= 500 else "refused", None, detail)


def job_answer(job_id: str, project_id: int, resp: HttpResponse, source: str) -> Union[Update, FetchFailed]:
    """GET of ``job_id`` (C7, C8), asked from a page of ``project_id``: the job -> news from
    ``source``; a job of another project or 404/410 -> ``gone``; anything else -> ``retry``."""
    if resp.status == 200:
        job = parse_job(resp.body)
        if job is None or job.id != job_id:
            return FetchFailed(job_id, "retry", MALFORMED)
        if job.project_id != project_id:
            return FetchFailed(job_id, "gone", "job of another project")
        return Update(JobUpdate.from_job(job), source)
    outcome = "gone" if resp.status in (404, 410) else "retry"
    return FetchFailed(job_id, outcome, error_text(resp.body, resp.status))


def delivery_news(job_id: str, project_id: int, resp: HttpResponse) -> Optional[Union[Update, FetchFailed]]:
    """A GET of ``job_id`` while its delivery is awaited (C9): the job's news when the server
    recorded a download of it or it is no longer completed (cancelled, expired...), ``gone``
    when the server no longer has it; None when it says nothing new (ask again later)."""
    event = job_answer(job_id, project_id, resp, "poll")
    if isinstance(event, Update):
        news = event.update
        return event if news.delivered or news.status != "completed" else None
    return event if event.outcome == "gone" else None


def socket_news(message: Any) -> tuple[Optional[Update], Optional[str]]:
    """A WebSocket message: ``(news, None)`` for an R6 event; ``(None, None)`` for a message
    that is not about an export (hello, ping); ``(None, problem)`` for a malformed event."""
    if not isinstance(message, dict) or not str(message.get("type", "")).startswith("export."):
        return None, None
    try:
        event = ExportEvent.model_validate(message)
    except ValidationError as exc:
        return None, f"{exc.error_count()} invalid fields"
    return Update(JobUpdate.from_event(event), "socket"), None
