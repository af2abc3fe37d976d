"""What each server answer means to the machine (``app.export_hook.answers``), table-driven:
every row is an answer and the event the hook dispatches for it."""
from __future__ import annotations

import pytest

from app.errors import field_errors
from app.export_hook.answers import (
    MALFORMED, cancel_answer, delivery_news, job_answer, parse_job, socket_news, start_answer,
)
from app.machine import CancelAnswered, FetchFailed, JobUpdate, StartAccepted, StartFailed, Update
from app.models import ExportEvent, ExportJob
from app.ports import HttpResponse

PID = 3


def job(status: str = "queued", jid: str = "j1", project_id: int = PID, **kw) -> ExportJob:
    return ExportJob(id=jid, project_id=project_id, status=status, seq=2, created_at="2026-01-01T00:00:00+00:00", **kw)


def body(j: ExportJob) -> dict:
    return j.model_dump(mode="json")


@pytest.mark.parametrize("resp, event", [
    (HttpResponse(202, body(job())), StartAccepted(job())),
    (HttpResponse(200, body(job("running"))), StartAccepted(job("running"))),  # R1: a repeated start token
    (HttpResponse(202, {"id": "j1"}), StartFailed(MALFORMED, retryable=True)),
    (HttpResponse(409, {"detail": "already running", "job": body(job("running"))}),
     StartAccepted(job("running"), conflict=True)),
    (HttpResponse(409, {"detail": "already running"}), StartFailed("already running", retryable=False)),
    (HttpResponse(422, field_errors([("pixel_size_um", "too large")])),
     StartFailed("pixel_size_um: too large", retryable=False)),
    (HttpResponse(503, {"detail": "busy"}), StartFailed("busy", retryable=True)),
    (HttpResponse(507, {"detail": "quota"}), StartFailed("quota", retryable=False)),  # R10: no retry
    (HttpResponse(502, None), StartFailed("HTTP 502", retryable=True)),
])
def test_start_answers(resp, event):
    assert start_answer(resp) == event


@pytest.mark.parametrize("resp, event", [
    (HttpResponse(200, body(job("cancelled"))), CancelAnswered("ok", job("cancelled"))),
    (HttpResponse(409, {"detail": "already downloaded", "job": body(job("completed", delivered=True))}),
     CancelAnswered("downloaded", job("completed", delivered=True), "already downloaded")),
    (HttpResponse(409, {"detail": "already downloaded"}), CancelAnswered("downloaded", None, "already downloaded")),
    (HttpResponse(409, {"detail": "x", "job": body(job("cancelled"))}), CancelAnswered("ok", job("cancelled"))),
    (HttpResponse(409, {"detail": "the export is already failed", "job": body(job("failed"))}),
     CancelAnswered("refused", job("failed"), "the export is already failed")),
    (HttpResponse(404, {"detail": "no such export"}), CancelAnswered("gone", None, "no such export")),
    (HttpResponse(410, None), CancelAnswered("gone", None, "HTTP 410")),
    (HttpResponse(503, {"detail": "busy"}), CancelAnswered("retry", None, "busy")),
    (HttpResponse(403, {"detail": "cross-site request refused"}),
     CancelAnswered("refused", None, "cross-site request refused")),
])
def test_cancel_answers(resp, event):
    assert cancel_answer(resp) == event


@pytest.mark.parametrize("resp, event", [
    (HttpResponse(200, body(job("running"))), Update(JobUpdate.from_job(job("running")), "poll")),
    (HttpResponse(200, body(job("running", jid="other"))), FetchFailed("j1", "retry", MALFORMED)),
    (HttpResponse(200, {"id": "j1"}), FetchFailed("j1", "retry", MALFORMED)),
    (HttpResponse(200, body(job("running", project_id=PID + 1))), FetchFailed("j1", "gone", "job of another project")),
    (HttpResponse(404, {"detail": "no such export"}), FetchFailed("j1", "gone", "no such export")),
    (HttpResponse(410, None), FetchFailed("j1", "gone", "HTTP 410")),
    (HttpResponse(500, None), FetchFailed("j1", "retry", "HTTP 500")),
])
def test_job_answers(resp, event):
    assert job_answer("j1", PID, resp, "poll") == event


def test_socket_news():
    event = ExportEvent.from_job(job("running", start_token="t.1"), 5.0).model_dump()
    news, problem = socket_news(event)
    assert problem is None and news == Update(
        JobUpdate("j1", PID, 2, "running", 0.0, "", "", start_token="t.1"), "socket")
    assert socket_news({"type": "ping", "ts": 1}) == (None, None)
    assert socket_news("not a dict") == (None, None)
    dropped, problem = socket_news({"type": "export.progress", "job_id": "j1"})
    assert dropped is None and problem.endswith("invalid fields")


@pytest.mark.parametrize("resp, news", [
    (HttpResponse(200, body(job("completed", delivered=True))), "update"),  # C9: recorded
    (HttpResponse(200, body(job("completed"))), None),  # not yet: ask again later
    (HttpResponse(200, body(job("cancelled"))), "update"),  # R2: a cancel came first
    (HttpResponse(200, body(job("expired"))), "update"),
    (HttpResponse(404, {"detail": "no such export"}), "gone"),
    (HttpResponse(503, {"detail": "busy"}), None),
    (HttpResponse(200, {"id": "j1"}), None),
])
def test_delivery_news(resp, news):
    event = delivery_news("j1", PID, resp)
    if news is None:
        assert event is None
    elif news == "update":
        assert event == Update(JobUpdate.from_job(parse_job(resp.body)), "poll")
    else:
        assert event == FetchFailed("j1", "gone", "no such export")
