"""``FakeServer``: the export API of DESIGN.md for one user (R1-R4, R6) over ``app.models``,
driven by the test, with scripted faults (``inject``)."""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from pydantic import ValidationError

from app.errors import validation_errors
from app.models import ACTIVE_STATUSES, ExportEvent, ExportJob, ExportOptions
from app.ports import HttpResponse

from .scheduler import Scheduler

if TYPE_CHECKING:
    from .ports import FakeSocketConn

NETWORK_ERROR = "network-error"      # the request never reached the server
LOST_RESPONSE = "lost-response"      # the server acted, the answer was lost
HANG = "hang"                        # no answer ever (until aborted)


@dataclass
class Injection:
    method: str
    path: re.Pattern
    outcome: Any
    times: int


def _iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


class FakeServer:
    """The export API of DESIGN.md for one user (R1-R4, R6), driven by the test.

    Jobs advance only when the test calls ``run``/``progress``/``complete``/``fail``/
    ``expire``; every change bumps the job's ``seq`` and sends an ``ExportEvent`` to every
    open socket. ``requests`` logs ``(tab, method, path)`` of every request that arrived.
    """

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.jobs: dict[str, ExportJob] = {}
        self._ids = itertools.count(1)
        self.injections: list[Injection] = []
        self.sockets: list["FakeSocketConn"] = []
        self.available = True
        self.requests: list[tuple[str, str, str]] = []
        self.download_answers: list[tuple[str, str, int]] = []

    # -- faults
    def inject(self, method: str, path_regex: str, outcome: Any, times: int = 1) -> None:
        """The next ``times`` requests matching ``method`` and ``path_regex`` (re.fullmatch)
        get ``outcome``: an ``HttpResponse`` (server does nothing), ``NETWORK_ERROR``,
        ``LOST_RESPONSE`` (server acts, client gets a network error) or ``HANG``."""
        self.injections.append(Injection(method, re.compile(path_regex), outcome, times))

    def _injected(self, method: str, path: str) -> Any:
        for inj in self.injections:
            if inj.method == method and inj.path.fullmatch(path.split("?")[0]) and inj.times > 0:
                inj.times -= 1
                return inj.outcome
        return None

    # -- HTTP
    def handle(self, tab: str, method: str, path: str, body: Any) -> Any:
        """Returns an ``HttpResponse``, ``NETWORK_ERROR`` or ``HANG``."""
        if not self.available:
            return NETWORK_ERROR
        outcome = self._injected(method, path)
        if outcome in (NETWORK_ERROR, HANG) or isinstance(outcome, HttpResponse):
            return outcome
        self.requests.append((tab, method, path))
        resp = self._route(method, path, body)
        return NETWORK_ERROR if outcome == LOST_RESPONSE else resp

    def _route(self, method: str, path: str, body: Any) -> HttpResponse:
        m = re.fullmatch(r"/api/projects/(\d+)/exports(?:\?start_token=([A-Za-z0-9._-]+))?", path)
        if m and method == "POST":
            return self._start(int(m.group(1)), body, m.group(2))
        m = re.fullmatch(r"/api/exports/([^/]+)", path)
        if m and method == "GET":
            job = self.jobs.get(m.group(1))
            return HttpResponse(200, self._dump(job)) if job else HttpResponse(404, {"detail": "no such export"})
        m = re.fullmatch(r"/api/exports/([^/]+)/cancel", path)
        if m and method == "POST":
            return self._cancel(m.group(1))
        return HttpResponse(404, {"detail": "not found"})

    @staticmethod
    def _dump(job: ExportJob) -> dict:
        return job.model_dump(mode="json")

    def _start(self, project_id: int, body: Any, start_token: Optional[str] = None) -> HttpResponse:
        try:
            options = ExportOptions.model_validate(body or {})
        except ValidationError as exc:
            return HttpResponse(422, validation_errors(exc))
        for job in self.jobs.values():
            if start_token is not None and job.start_token == start_token:
                return HttpResponse(202, self._dump(job))  # R1: a repeated start gets its job
        for job in self.jobs.values():
            if job.project_id == project_id and job.status in ACTIVE_STATUSES:
                return HttpResponse(409, {"detail": "an export is already running", "job": self._dump(job)})
        jid = f"job-{next(self._ids)}"
        job = ExportJob(id=jid, project_id=project_id, status="queued", seq=1, stage="queued",
                        created_at=_iso(self.sched.now_ms), options=options, start_token=start_token)
        self.jobs[jid] = job
        self._emit(job)
        return HttpResponse(202, self._dump(job))

    def _cancel(self, job_id: str) -> HttpResponse:
        job = self.jobs.get(job_id)
        if job is None:
            return HttpResponse(404, {"detail": "no such export"})
        if job.status == "cancelled":
            return HttpResponse(200, self._dump(job))
        if job.status in ACTIVE_STATUSES or (job.status == "completed" and not job.delivered):
            job = self._set(job_id, status="cancelled", stage="cancelled", finished_at=_iso(self.sched.now_ms))
            return HttpResponse(200, self._dump(job))
        if job.status == "completed":
            return HttpResponse(409, {"detail": "already downloaded", "job": self._dump(job)})
        return HttpResponse(409, {"detail": f"export already {job.status}", "job": self._dump(job)})

    def download(self, job_id: str) -> int:
        """R4: the first download of a completed job marks it delivered."""
        job = self.jobs.get(job_id)
        if job is None:
            return 404
        if job.status in ("cancelled", "expired"):
            return 410
        if job.status in ACTIVE_STATUSES:
            return 409
        if job.status == "failed":
            return 404
        if not job.delivered:
            self.jobs[job_id] = job.model_copy(update={"delivered": True})
        return 200

    # -- job control (the worker)
    def _set(self, job_id: str, **changes: Any) -> ExportJob:
        job = self.jobs[job_id]
        job = job.model_copy(update={**changes, "seq": job.seq + 1})
        self.jobs[job_id] = job
        self._emit(job)
        return job

    def run(self, job_id: str, progress: float = 0.0) -> ExportJob:
        assert self.jobs[job_id].status == "queued", self.jobs[job_id].status
        return self._set(job_id, status="running", stage="annotations", progress=progress)

    def progress(self, job_id: str, progress: float) -> Optional[ExportJob]:
        if self.jobs[job_id].status != "running":
            return None  # the worker stops at its next checkpoint (R2)
        return self._set(job_id, progress=progress)

    def complete(self, job_id: str, size_bytes: int = 4096) -> Optional[ExportJob]:
        """R3: a compare-and-set from running; returns None if the job was not running."""
        if self.jobs[job_id].status != "running":
            return None
        return self._set(job_id, status="completed", progress=100.0, stage="done",
                         size_bytes=size_bytes, finished_at=_iso(self.sched.now_ms))

    def fail(self, job_id: str, message: str = "worker crashed") -> Optional[ExportJob]:
        if self.jobs[job_id].status not in ACTIVE_STATUSES:
            return None
        return self._set(job_id, status="failed", message=message, finished_at=_iso(self.sched.now_ms))

    def expire(self, job_id: str) -> ExportJob:
        return self._set(job_id, status="expired")

    def finish(self, job_id: str) -> ExportJob:
        """queued -> running -> completed in one go."""
        if self.jobs[job_id].status == "queued":
            self.run(job_id)
        job = self.complete(job_id)
        assert job is not None
        return job

    def active_job(self, project_id: int) -> Optional[ExportJob]:
        for job in self.jobs.values():
            if job.project_id == project_id and job.status in ACTIVE_STATUSES:
                return job
        return None

    # -- WebSocket (R6)
    def _emit(self, job: ExportJob) -> None:
        event = ExportEvent.from_job(job, self.sched.now_ms).model_dump()
        for conn in list(self.sockets):
            conn.send(event)
