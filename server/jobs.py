"""Export jobs: the rules R1-R5 and R7 as compare-and-set statements, and the worker.

Decisions (the full table is ``server/DECISIONS.md``):
- R1 is enforced by a partial unique index (``one_active_export``): two starts at once
  cannot both insert an active job; the loser gets the winner's job (409).
- R2/R3: every status change is one ``UPDATE ... WHERE status IN (...)``; a statement that
  changes no row lost the race, and the caller reports the state that won.
- R5: the worker writes ``<job>.<attempt>.zip.part`` and renames it to ``<job>.<attempt>.zip``
  only when the archive is complete (``server.job_attempt``); a worker that loses the
  completion CAS deletes its own attempt's files, never another attempt's.
- Fencing: a worker's writes carry its attempt (``attempts`` of the row when it started it).
- Cancellation: ``cancel`` flips the row first, then sets an in-memory event that the
  worker's checkpoint sees at its next call (at least once per image and inside long steps).
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Optional, Protocol

from sqlalchemy import ColumnElement, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.models import ExportEvent, ExportJob, ExportOptions
from server import fair_use
from server.db import Database, utc_now_iso
from server.fair_use import FairUse
from server.dialects import insertion_order
from server.job_attempt import JobCancelled, run_attempt  # noqa: F401 - JobCancelled: the writers' name for it
from server.scheduler import FairQueue
from server.schema import ACTIVE_STATUSES, jobs

EventSink = Callable[[int, dict], None]  # (user_id, event dict) -> None; must be thread-safe


class TransactionHooks(Protocol):
    """What a deployment adds inside the job store's write transactions (the cluster: the
    queue entry, the queue's abort and the event's NOTIFY, committed with the row or not at
    all). ``conn`` is the transaction's connection, ``row`` the job row it wrote."""

    def created(self, conn: Any, row: Mapping) -> None: ...

    def changed(self, conn: Any, row: Mapping) -> None: ...

    def cancelled(self, conn: Any, row: Mapping) -> None: ...


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

    def reset(self) -> int:
        """No hold, no delay, every held job released; how many were held."""
        self.hold_before_complete = False
        self.delay_per_checkpoint_ms = 0.0
        with self.lock:
            held = list(self.held.values())
        for event in held:
            event.set()
        return len(held)


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


transition_statement = _transition
"""For the cluster's own transitions (``server.cluster``): the same compare-and-set shape."""

_RUNNING = jobs.c.status == "running"
OWN_ATTEMPT = and_(_RUNNING, jobs.c.attempts == bindparam("attempt"))
"""Fencing: a worker's writes hold only while the job runs the attempt that worker was given;
a worker presumed dead (its job put back, a new attempt begun) changes nothing any more."""
_MARK_RUNNING = _transition(_ACTIVE, status="running", stage="starting", message="Starting",
                            attempts=jobs.c.attempts + 1)
_PROGRESS = _transition(OWN_ATTEMPT, progress=bindparam("new_progress"), stage=bindparam("new_stage"),
                        message=bindparam("new_message"))
_COMPLETE = _transition(OWN_ATTEMPT, status="completed", progress=100, stage="done", message="Export ready",
                        finished_at=bindparam("new_finished_at"), size_bytes=bindparam("new_size_bytes"),
                        warnings_json=bindparam("new_warnings_json"), archive_name=bindparam("new_archive_name"),
                        archive_sha256=bindparam("new_archive_sha256"))
_FAIL = _transition(_ACTIVE, status="failed", stage="failed", message=bindparam("new_message"),
                    finished_at=bindparam("new_finished_at"))
_FAIL_ATTEMPT = _transition(OWN_ATTEMPT, status="failed", stage="failed", message=bindparam("new_message"),
                            finished_at=bindparam("new_finished_at"))
_CANCEL = _transition(or_(_ACTIVE, and_(jobs.c.status == "completed", jobs.c.delivered.is_(False))),
                      status="cancelled", stage="cancelled", message="Export cancelled",
                      finished_at=bindparam("new_finished_at"))
_EXPIRE = _transition(and_(jobs.c.status == "completed",
                           or_(jobs.c.streaming_until.is_(None), jobs.c.streaming_until < bindparam("now"))),
                      status="expired", stage="expired", message="Archive expired")
STREAM_HOLD_SECONDS = 60.0
"""R5: a download in progress keeps its archive from expiring for this long after its last
sign of life (``claim_download``, ``hold_stream``), on whichever replica it streams."""
_GET = select(jobs).where(jobs.c.id == _JOB_ID)
_ACTIVE_OF_PROJECT = select(jobs).where(jobs.c.user_id == bindparam("user_id"),
                                        jobs.c.project_id == bindparam("project_id"), _ACTIVE)


class JobStore:
    """Job rows and their state changes. Every method is safe to call from any thread."""

    def __init__(self, db: Database, exports_dir: Path, emit: EventSink, limits: FairUse = FairUse(),
                 in_transaction: Optional["TransactionHooks"] = None) -> None:
        self.db = db
        self.exports_dir = Path(exports_dir)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        self.emit = emit
        self.limits = limits
        self.in_transaction = in_transaction

    # --- paths -----------------------------------------------------------------
    # R5: one archive per job and attempt, ``<job>.<attempt>.zip``, written as ``.part`` and
    # renamed; the row's ``archive_name`` names the one that completed.
    def attempt_path(self, job_id: str, attempt: int) -> Path:
        return self.exports_dir / f"{job_id}.{attempt}.zip"

    def partial_path(self, job_id: str, attempt: Optional[int] = None) -> Path:
        """The temporary file of ``attempt`` (default: the job's current attempt)."""
        if attempt is None:
            row = self.get_row(job_id)
            attempt = row["attempts"] if row else 0
        return self.exports_dir / f"{job_id}.{attempt}.zip.part"

    def archive_path(self, job_id: str) -> Path:
        """The archive of the attempt that completed (a path that does not exist if none did)."""
        row = self.get_row(job_id)
        name = row["archive_name"] if row is not None and row["archive_name"] else f"{job_id}.zip"
        return self.exports_dir / name

    def remove_attempt_files(self, job_id: str, attempt: int) -> None:
        """The files of one attempt: what a worker may remove (never another attempt's)."""
        for path in (self.attempt_path(job_id, attempt), self.partial_path(job_id, attempt)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def remove_files(self, job_id: str, attempts: Optional[int] = None) -> None:
        """Every file of the job (attempts 0..``attempts``, default the row's count), and the
        ``<job>.zip`` of data folders from before attempts were named."""
        if attempts is None:
            row = self.get_row(job_id)
            attempts = row["attempts"] if row is not None else 0
        for attempt in range(attempts + 1):
            self.remove_attempt_files(job_id, attempt)
        try:
            (self.exports_dir / f"{job_id}.zip").unlink()
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
                if self.in_transaction is not None:
                    self.in_transaction.created(conn, row)  # its queue entry and event: both or neither
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

    def transition(self, job_id: str, transition, also: Optional[Callable[[Any, Mapping], None]] = None,
                   **params: Any) -> Optional[Mapping]:
        """Run ``transition`` (a ``transition_statement``) on the job with ``params`` in one
        write transaction, with the event it makes (``in_transaction.changed``) and ``also(conn,
        row)`` in that transaction; emit it after the commit. The new row, or None if the
        statement's condition did not hold (it changed no row)."""
        with self.db.writing() as conn:
            row = conn.execute(transition, {"job_id": job_id, **params}).mappings().first()
            if row is not None:
                if also is not None:
                    also(conn, row)
                if self.in_transaction is not None:
                    self.in_transaction.changed(conn, row)
        if row is not None:
            self._emit(row["user_id"], job_from_row(row))
        return row

    def _update(self, job_id: str, transition, **params: Any) -> Optional[ExportJob]:
        row = self.transition(job_id, transition, **params)
        return job_from_row(row) if row is not None else None

    def mark_running(self, job_id: str) -> Optional[ExportJob]:
        started = self.start_attempt(job_id)
        return started[0] if started is not None else None

    def start_attempt(self, job_id: str) -> Optional[tuple[ExportJob, int]]:
        """queued (or running, after a restart) -> running, as a new attempt: ``(job, attempt)``,
        the attempt every later write of the worker carries (fencing); None if not active."""
        row = self.transition(job_id, _MARK_RUNNING)
        return (job_from_row(row), int(row["attempts"])) if row is not None else None

    def progress(self, job_id: str, progress: float, stage: str, message: str,
                 attempt: Optional[int] = None) -> Optional[ExportJob]:
        """Progress of ``attempt`` (default: the current one); None if that attempt no longer
        runs the job (cancelled, failed, or put back and begun again elsewhere)."""
        return self._update(job_id, _PROGRESS, new_progress=round(max(0.0, min(99.9, progress)), 1),
                            new_stage=stage, new_message=message, attempt=self._attempt(job_id, attempt))

    def complete(self, job_id: str, size_bytes: int, warnings: list[str],
                 attempt: Optional[int] = None) -> Optional[ExportJob]:
        """R3: completion is a compare-and-set from running, by the attempt that runs the job;
        the archive is that attempt's. None if the job was not running that attempt. The
        archive's SHA-256 is recorded with it (the job's ``sha256``, the download's ETag)."""
        attempt = self._attempt(job_id, attempt)
        archive_path = self.attempt_path(job_id, attempt)
        try:
            with open(archive_path, "rb") as archive:
                digest = file_sha256(archive)
        except FileNotFoundError:  # none (a fenced-out attempt: the compare-and-set refuses it)
            digest = None
        return self._update(job_id, _COMPLETE, new_finished_at=utc_now_iso(), new_size_bytes=size_bytes,
                            new_warnings_json=json.dumps(warnings), attempt=attempt,
                            new_archive_name=archive_path.name, new_archive_sha256=digest)

    def archive_digest(self, job_id: str, archive: BinaryIO) -> str:
        """The SHA-256 of the job's archive: the one recorded at completion, or, for an archive
        finished before digests were recorded, computed from the open ``archive`` and kept."""
        recorded = self.db.scalar(select(jobs.c.archive_sha256).where(jobs.c.id == job_id))
        if recorded:
            return recorded
        digest = file_sha256(archive)
        self.db.execute(update(jobs).where(jobs.c.id == job_id).values(archive_sha256=digest))
        return digest

    def fail(self, job_id: str, message: str, attempt: Optional[int] = None) -> Optional[ExportJob]:
        """Active -> failed; with ``attempt``, only while that attempt runs the job (a worker's
        own failure), without, whatever runs it (recovery)."""
        if attempt is None:
            return self._update(job_id, _FAIL, new_message=message, new_finished_at=utc_now_iso())
        return self._update(job_id, _FAIL_ATTEMPT, new_message=message, new_finished_at=utc_now_iso(),
                            attempt=attempt)

    def _attempt(self, job_id: str, attempt: Optional[int]) -> int:
        if attempt is not None:
            return attempt
        row = self.get_row(job_id)
        return int(row["attempts"]) if row is not None else -1

    def cancel(self, job_id: str) -> Optional[ExportJob]:
        """R2: queued/running, or completed and never downloaded -> cancelled. None if neither.
        With ``in_transaction``, the queue's abort is part of the same transaction."""
        also = self.in_transaction.cancelled if self.in_transaction is not None else None
        row = self.transition(job_id, _CANCEL, also=also, new_finished_at=utc_now_iso())
        if row is None:
            return None
        # A completed archive is deleted at once; a running worker deletes its own partial
        # file when it reaches its next checkpoint (and we delete whatever is there now).
        self.remove_files(job_id, row["attempts"])
        return job_from_row(row)

    def requeue_after_restart(self, job_id: str) -> None:
        """R7: a job a stopped server left queued/running is queued again (same seq)."""
        self.db.execute(update(jobs).where(jobs.c.id == job_id, _ACTIVE).values(
            status="queued", stage="queued", message="Restarted after a server restart"))

    def claim_download(self, job_id: str) -> bool:
        """Mark a completed job delivered (R4) and hold its archive against expiry while it is
        streamed (R5, ``hold_stream``). False if it is not completed."""
        return self.db.execute(
            update(jobs).where(jobs.c.id == job_id, jobs.c.status == "completed")
            .values(delivered=True, streaming_until=time.time() + STREAM_HOLD_SECONDS)
        ) == 1

    def hold_stream(self, job_id: str) -> None:
        """A download of the job is still streaming: no expiry for ``STREAM_HOLD_SECONDS``."""
        until = time.time() + STREAM_HOLD_SECONDS
        self.db.execute(update(jobs).where(jobs.c.id == job_id, or_(
            jobs.c.streaming_until.is_(None), jobs.c.streaming_until < until)).values(streaming_until=until))

    def expire_old(self, ttl_seconds: float) -> list[str]:
        """R5: completed jobs older than the TTL become expired and lose their archive."""
        cutoff = time.time() - ttl_seconds
        expired = []
        for row in self.db.all(select(jobs.c.id, jobs.c.finished_at).where(jobs.c.status == "completed")):
            finished = row["finished_at"]
            if finished and _iso_to_ts(finished) < cutoff:
                job = self._update(row["id"], _EXPIRE, now=time.time())
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
        try:
            started = self.store.start_attempt(job_id)
            if started is None:
                return
            job, attempt = started
            # A stop is a cancel (the row already says so) or a shutdown (the row stays
            # running, and the next start runs the job again, R7): either way no archive.
            run_attempt(self.store, self.build, job, attempt, cancelled.is_set, self.hooks)
        finally:
            with self._lock:
                self.cancel_events.pop(job_id, None)
