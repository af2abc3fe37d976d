"""Export jobs: the rules R1-R5 and R7 as compare-and-set statements, and the worker.

Decisions (the full table is ``server/DECISIONS.md``):
- R1 is enforced by a partial unique index (``one_active_export``): two starts at once
  cannot both insert an active job; the loser gets the winner's job (409).
- R2/R3: every status change is one ``UPDATE ... WHERE status IN (...)``; a statement that
  changes no row lost the race, and the caller reports the state that won.
- R5: the worker writes ``<job>.zip.part`` and renames it to ``<job>.zip`` only when the
  archive is complete; a worker that loses the completion CAS deletes its own file.
- Cancellation: ``cancel`` flips the row first, then sets an in-memory event that the
  worker's checkpoint sees at its next call (at least once per image and inside long steps).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Optional

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.models import ExportEvent, ExportJob, ExportOptions
from server import fair_use
from server.db import Database, utc_now_iso
from server.fair_use import FairUse
from server.dialects import insertion_order
from server.scheduler import FairQueue
from server.schema import ACTIVE_STATUSES, jobs

EventSink = Callable[[int, dict], None]  # (user_id, event dict) -> None; must be thread-safe


class JobCancelled(Exception):
    """Raised inside the worker at a checkpoint once its job has been cancelled."""


@dataclass
class TestHooks:
    """Test-only controls (exist only when ``CELLHUB_TEST_HOOKS=1``).

    ``hold_before_complete``: workers wait, archive written, just before the completion CAS,
    until ``release(job_id)``. ``delay_per_checkpoint_ms``: sleep at each checkpoint call that
    changes the report (repeated calls, the writer's cancel checks, do not sleep again)."""

    hold_before_complete: bool = False
    delay_per_checkpoint_ms: float = 0.0
    held: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def hold_point(self, job_id: str, is_cancelled: Callable[[], bool]) -> None:
        if not self.hold_before_complete:
            return
        with self.lock:
            event = self.held.setdefault(job_id, threading.Event())
        while not event.wait(0.005):
            if is_cancelled():
                break
        with self.lock:
            self.held.pop(job_id, None)  # no longer parked, whichever way it left

    def release(self, job_id: str) -> bool:
        with self.lock:
            event = self.held.get(job_id)
        if event is None:
            return False
        event.set()
        return True

    def is_held(self, job_id: str) -> bool:
        with self.lock:
            event = self.held.get(job_id)
        return event is not None and not event.is_set()


def job_from_row(row: Mapping) -> ExportJob:
    """The public job JSON (no server paths) of a ``jobs`` row."""
    return ExportJob(
        id=row["id"],
        project_id=row["project_id"],
        status=row["status"],
        progress=row["progress"],
        stage=row["stage"],
        message=row["message"],
        seq=row["seq"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        delivered=bool(row["delivered"]),
        size_bytes=row["size_bytes"],
        warnings=json.loads(row["warnings_json"]),
        options=ExportOptions.model_validate_json(row["options_json"]),
        start_token=row["start_token"],
        sha256=row["archive_sha256"],
    )


_ACTIVE = jobs.c.status.in_(ACTIVE_STATUSES)
_JOB_ID = bindparam("job_id")


def _transition(where: ColumnElement[bool], **values: Any):
    """``UPDATE jobs SET seq = seq + 1, **values WHERE id = :job_id AND where RETURNING *``:
    one compare-and-set. Built once (parameters are ``bindparam`` s named ``new_*``), so a
    transition costs no statement building or cache-key work, only its execution."""
    return update(jobs).where(jobs.c.id == _JOB_ID, where).values(seq=jobs.c.seq + 1, **values).returning(jobs)


_RUNNING = jobs.c.status == "running"
_MARK_RUNNING = _transition(_ACTIVE, status="running", stage="starting", message="Starting",
                            attempts=jobs.c.attempts + 1)
_PROGRESS = _transition(_RUNNING, progress=bindparam("new_progress"), stage=bindparam("new_stage"),
                        message=bindparam("new_message"))
_COMPLETE = _transition(_RUNNING, status="completed", progress=100, stage="done", message="Export ready",
                        finished_at=bindparam("new_finished_at"), size_bytes=bindparam("new_size_bytes"),
                        warnings_json=bindparam("new_warnings_json"), archive_name=bindparam("new_archive_name"),
                        archive_sha256=bindparam("new_archive_sha256"))
_FAIL = _transition(_ACTIVE, status="failed", stage="failed", message=bindparam("new_message"),
                    finished_at=bindparam("new_finished_at"))
_CANCEL = _transition(or_(_ACTIVE, and_(jobs.c.status == "completed", jobs.c.delivered.is_(False))),
                      status="cancelled", stage="cancelled", message="Export cancelled",
                      finished_at=bindparam("new_finished_at"))
_EXPIRE = _transition(jobs.c.status == "completed", status="expired", stage="expired", message="Archive expired")
_GET = select(jobs).where(jobs.c.id == _JOB_ID)
_ACTIVE_OF_PROJECT = select(jobs).where(jobs.c.user_id == bindparam("user_id"),
                                        jobs.c.project_id == bindparam("project_id"), _ACTIVE)


class JobStore:
    """Job rows and their state changes. Every method is safe to call from any thread."""

    def __init__(self, db: Database, exports_dir: Path, emit: EventSink, limits: FairUse = FairUse()) -> None:
        self.db = db
        self.exports_dir = Path(exports_dir)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        self.emit = emit
        self.limits = limits

    # --- paths -----------------------------------------------------------------
    def archive_path(self, job_id: str) -> Path:
        return self.exports_dir / f"{job_id}.zip"

    def partial_path(self, job_id: str) -> Path:
        return self.exports_dir / f"{job_id}.zip.part"

    def remove_files(self, job_id: str) -> None:
        for path in (self.archive_path(job_id), self.partial_path(job_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # --- reads -----------------------------------------------------------------
    def get_row(self, job_id: str) -> Optional[Mapping]:
        return self.db.one(_GET, {"job_id": job_id})

    def get(self, job_id: str) -> Optional[ExportJob]:
        row = self.get_row(job_id)
        return job_from_row(row) if row else None

    def active_for(self, user_id: int, project_id: Optional[int] = None) -> list[ExportJob]:
        query = select(jobs).where(jobs.c.user_id == user_id, _ACTIVE)
        if project_id is not None:
            query = query.where(jobs.c.project_id == project_id)
        return [job_from_row(r) for r in self.db.all(query.order_by(jobs.c.created_at))]

    def history(self, user_id: int, project_id: int, limit: int = 20) -> list[ExportJob]:
        """The user's last ``limit`` exports of the project, newest first."""
        rows = self.db.all(
            select(jobs).where(jobs.c.user_id == user_id, jobs.c.project_id == project_id)
            .order_by(jobs.c.created_at.desc(), insertion_order(jobs, self.db.dialect).desc()).limit(limit)
        )
        return [job_from_row(r) for r in rows]

    def unfinished(self) -> list[Mapping]:
        """``{id, user_id, attempts}`` of every queued or running job, oldest first (R7: what a
        restart finds)."""
        return self.db.all(select(jobs.c.id, jobs.c.user_id, jobs.c.attempts).where(_ACTIVE)
                           .order_by(jobs.c.created_at))

    def of_project(self, project_id: int) -> list[Mapping]:
        """``{id, user_id, status, delivered}`` of every job of the project."""
        return self.db.all(select(jobs.c.id, jobs.c.user_id, jobs.c.status, jobs.c.delivered)
                           .where(jobs.c.project_id == project_id))

    def delete(self, job_id: str) -> bool:
        """Remove a finished job (not queued or running): its row and its files. False if the
        job is active or gone."""
        if self.db.execute(delete(jobs).where(jobs.c.id == job_id, ~_ACTIVE)) != 1:
            return False
        self.remove_files(job_id)
        return True

    # --- transitions -------------------------------------------------------------
    def by_start_token(self, user_id: int, start_token: str) -> Optional[ExportJob]:
        """The user's job created by the start request named ``start_token``, if any."""
        row = self.db.one(select(jobs).where(jobs.c.user_id == user_id, jobs.c.start_token == start_token))
        return job_from_row(row) if row is not None else None

    def create(self, user_id: int, project_id: int, options: ExportOptions,
               start_token: Optional[str] = None, _retry: bool = True) -> tuple[ExportJob, str]:
        """Insert a queued job (R1). Returns ``(job, "created")``; ``(job, "repeated")`` when
        ``start_token`` names a job this user already started (any status, any project: a
        repeated request gets what the first one made); ``(active job, "active")`` when the
        user already has an active export of this project. Raises ``StartRefused`` when a
        fair-use limit (``self.limits``, R10) refuses a new job."""
        if start_token is not None:
            earlier = self.by_start_token(user_id, start_token)
            if earlier is not None:
                return earlier, "repeated"
        job_id = secrets.token_hex(8)
        try:
            with self.db.writing() as conn:
                if self.limits != FairUse():
                    fair_use.lock_user(conn, user_id)
                    active = conn.execute(_ACTIVE_OF_PROJECT, {"user_id": user_id, "project_id": project_id}).mappings().first()
                    if active is not None:  # R1 before the limits: a second tab attaches to it
                        return job_from_row(active), "active"
                    fair_use.check(conn, user_id, self.limits)
                row = conn.execute(insert(jobs).values(
                    id=job_id, user_id=user_id, project_id=project_id, status="queued", seq=1,
                    created_at=utc_now_iso(), options_json=options.model_dump_json(), stage="queued",
                    message="Waiting to start", start_token=start_token,
                ).returning(jobs)).mappings().one()
        except IntegrityError:
            if start_token is not None:
                earlier = self.by_start_token(user_id, start_token)
                if earlier is not None:  # the same request, repeated at the same moment
                    return earlier, "repeated"
            active = self.active_for(user_id, project_id)
            if active:
                return active[0], "active"
            if not _retry:
                raise  # not R1 (e.g. the project was deleted meanwhile)
            # The active job finished between our insert and our read: try once more.
            return self.create(user_id, project_id, options, start_token, _retry=False)
        job = job_from_row(row)
        self._emit(user_id, job)
        return job, "created"

    def _emit(self, user_id: int, job: ExportJob) -> None:
        self.emit(user_id, ExportEvent.from_job(job, time.time() * 1000).model_dump())

    def _update(self, job_id: str, transition, **params: Any) -> Optional[ExportJob]:
        """Run ``transition`` (a ``_transition`` statement) on the job with ``params``; emit
        and return the new job, or None if its condition did not hold (it changed no row)."""
        with self.db.writing() as conn:
            row = conn.execute(transition, {"job_id": job_id, **params}).mappings().first()
        if row is None:
            return None
        job = job_from_row(row)
        self._emit(row["user_id"], job)
        return job

    def mark_running(self, job_id: str) -> Optional[ExportJob]:
        return self._update(job_id, _MARK_RUNNING)

    def progress(self, job_id: str, progress: float, stage: str, message: str) -> Optional[ExportJob]:
        return self._update(job_id, _PROGRESS, new_progress=round(max(0.0, min(99.9, progress)), 1),
                            new_stage=stage, new_message=message)

    def complete(self, job_id: str, size_bytes: int, warnings: list[str]) -> Optional[ExportJob]:
        """R3: completion is a compare-and-set from running. None if the job was not running.
        The archive's SHA-256 is recorded with it (the job's ``sha256``, the download's ETag)."""
        with open(self.archive_path(job_id), "rb") as archive:
            digest = file_sha256(archive)
        return self._update(job_id, _COMPLETE, new_finished_at=utc_now_iso(), new_size_bytes=size_bytes,
                            new_warnings_json=json.dumps(warnings), new_archive_name=f"{job_id}.zip",
                            new_archive_sha256=digest)

    def archive_digest(self, job_id: str, archive: BinaryIO) -> str:
        """The SHA-256 of the job's archive: the one recorded at completion, or, for an archive
        finished before digests were recorded, computed from the open ``archive`` and kept."""
        recorded = self.db.scalar(select(jobs.c.archive_sha256).where(jobs.c.id == job_id))
        if recorded:
            return recorded
        digest = file_sha256(archive)
        self.db.execute(update(jobs).where(jobs.c.id == job_id).values(archive_sha256=digest))
        return digest

    def fail(self, job_id: str, message: str) -> Optional[ExportJob]:
        return self._update(job_id, _FAIL, new_message=message, new_finished_at=utc_now_iso())

    def cancel(self, job_id: str) -> Optional[ExportJob]:
        """R2: queued/running, or completed and never downloaded -> cancelled. None if neither."""
        job = self._update(job_id, _CANCEL, new_finished_at=utc_now_iso())
        if job is not None:
            # A completed archive is deleted at once; a running worker deletes its own partial
            # file when it reaches its next checkpoint (and we delete whatever is there now).
            self.remove_files(job_id)
        return job

    def requeue_after_restart(self, job_id: str) -> None:
        """R7: a job a stopped server left queued/running is queued again (same seq)."""
        self.db.execute(update(jobs).where(jobs.c.id == job_id, _ACTIVE).values(
            status="queued", stage="queued", message="Restarted after a server restart"))

    def claim_download(self, job_id: str) -> bool:
        """Mark a completed job delivered (R4). False if it is not completed."""
        return self.db.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.status == "completed").values(delivered=True)
        ) == 1

    def expire_old(self, ttl_seconds: float) -> list[str]:
        """R5: completed jobs older than the TTL become expired and lose their archive."""
        cutoff = time.time() - ttl_seconds
        expired = []
        for row in self.db.all(select(jobs.c.id, jobs.c.finished_at).where(jobs.c.status == "completed")):
            finished = row["finished_at"]
            if finished and _iso_to_ts(finished) < cutoff:
                job = self._update(row["id"], _EXPIRE)
                if job is not None:
                    self.remove_files(row["id"])
                    expired.append(row["id"])
        return expired


def file_sha256(stream: BinaryIO) -> str:
    """The SHA-256 (hex) of everything in the binary file ``stream`` (read from its start; its
    position is put back)."""
    position = stream.tell()
    stream.seek(0)
    digest = hashlib.file_digest(stream, "sha256").hexdigest()
    stream.seek(position)
    return digest


def _iso_to_ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()


class Runner:
    """Runs export jobs on ``workers`` threads, taking them from a ``FairQueue`` (round-robin
    over users, R10); ``build`` writes one archive.

    ``build(job, dest_path, checkpoint) -> warnings`` must call ``checkpoint(stage, fraction,
    message)`` often; ``checkpoint`` raises ``JobCancelled`` once the job is cancelled. It is
    cheap enough to be called every few milliseconds (``write_archive`` repeats its last report
    inside long steps as its cancel check): a flag test, and a progress row written and sent
    at most every 100 ms.
    """

    def __init__(self, store: JobStore, build: Callable, hooks: Optional[TestHooks] = None, workers: int = 2,
                 round_robin: bool = True) -> None:
        self.store = store
        self.build = build
        self.hooks = hooks
        self.cancel_events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.queue = FairQueue(round_robin)
        self._workers = [threading.Thread(target=self._work, name=f"export-{n}", daemon=True) for n in range(workers)]
        for worker in self._workers:
            worker.start()

    def submit(self, job_id: str, user_id: Optional[int] = None) -> None:
        """Queue a job for the workers (``user_id``: its owner, looked up when not given)."""
        if user_id is None:
            row = self.store.get_row(job_id)
            if row is None:
                return
            user_id = int(row["user_id"])
        with self._lock:
            self.cancel_events.setdefault(job_id, threading.Event())
        self.queue.put(user_id, job_id)

    def cancel(self, job_id: str) -> Optional[ExportJob]:
        job = self.store.cancel(job_id)
        if job is not None:
            discarded = self.queue.discard(job_id)  # never started: no worker will look at it
            with self._lock:
                event = self.cancel_events.pop(job_id, None) if discarded else self.cancel_events.get(job_id)
            if event is not None:
                event.set()
        return job

    def shutdown(self) -> None:
        with self._lock:
            events = list(self.cancel_events.values())
        self.queue.close()  # queued jobs stay queued in the database: the next start runs them (R7)
        for event in events:
            event.set()  # workers stop at their next checkpoint; their jobs are re-run on restart (R7)
        for worker in self._workers:
            worker.join()

    def _work(self) -> None:
        while (job_id := self.queue.get()) is not None:
            try:
                self._run(job_id)
            except BaseException:  # noqa: BLE001 - a worker thread must outlive any job
                traceback.print_exc()

    def _run(self, job_id: str) -> None:
        with self._lock:
            cancelled = self.cancel_events.setdefault(job_id, threading.Event())
        partial = self.store.partial_path(job_id)
        try:
            job = self.store.mark_running(job_id)
            if job is None:
                return
            last = [0.0]
            reported: list = [None]

            def checkpoint(stage: str, fraction: float, message: str) -> None:
                # The test hook slows progress reports down; a call that only repeats the last
                # report (the writer's cancel check inside a long step) does not sleep again.
                if self.hooks and self.hooks.delay_per_checkpoint_ms and reported[0] != (stage, fraction, message):
                    reported[0] = (stage, fraction, message)
                    time.sleep(self.hooks.delay_per_checkpoint_ms / 1000)
                if cancelled.is_set():
                    raise JobCancelled(job_id)
                now = time.monotonic()
                # Progress events at most every 100 ms keep the socket quiet on huge projects.
                if now - last[0] >= 0.1 or fraction >= 1.0:
                    last[0] = now
                    if self.store.progress(job_id, fraction * 100, stage, message) is None:
                        raise JobCancelled(job_id)

            warnings = self.build(job, partial, checkpoint)
            if cancelled.is_set():
                raise JobCancelled(job_id)
            final = self.store.archive_path(job_id)
            os.replace(partial, final)
            if self.hooks:
                self.hooks.hold_point(job_id, cancelled.is_set)
            if cancelled.is_set():
                # Cancelled (the row already says so) or shutting down (the row stays
                # running, and the next start runs it again, R7): either way no archive.
                raise JobCancelled(job_id)
            size = final.stat().st_size
            if self.store.complete(job_id, size, list(warnings or [])) is None:
                # R3: the job was cancelled (or failed) meanwhile; its output is discarded.
                self.store.remove_files(job_id)
        except JobCancelled:
            self.store.remove_files(job_id)
        except OSError as exc:
            self.store.remove_files(job_id)
            reason = "the disk is full" if getattr(exc, "errno", None) == 28 else f"a write error ({exc.strerror or exc})"
            self.store.fail(job_id, f"Export failed: {reason}. No archive was kept.")
        except Exception as exc:  # noqa: BLE001 - any bug in a writer must end the job, not hang it
            self.store.remove_files(job_id)
            traceback.print_exc()
            self.store.fail(job_id, f"Export failed: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self.cancel_events.pop(job_id, None)
