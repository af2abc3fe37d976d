"""One attempt at one export job: what a worker does once it has been given the job, the same
for the embedded runner's threads (``server.jobs.Runner``) and the cluster's worker
processes (``server.cluster.worker``).

Contract:
- ``run_attempt(store, build, job, attempt, should_stop, hooks)`` writes the archive of
  ``attempt`` (``<job>.<attempt>.zip.part``, renamed to ``.zip`` once complete) and completes
  the job by compare-and-set (R3, R5). Every write carries ``attempt`` (fencing): once the job
  no longer runs this attempt (cancelled, failed, or put back and begun again elsewhere) the
  next checkpoint stops the attempt.
- ``should_stop()`` is polled at every checkpoint: true once the job was cancelled or its
  worker is shutting down; the attempt then stops (``JobCancelled``) and leaves no file.
- Only this attempt's files are ever removed here (a worker presumed dead cannot delete the
  archive of the job's next attempt).
- The outcome: ``"completed"``, ``"stopped"`` (cancelled, shutting down, or no longer this
  attempt's job: the caller decides what the row becomes), or ``"failed"`` (an error; the
  row says failed with a clear message, if the attempt still ran the job).
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from typing import Callable, Literal

from app.models import ExportJob

Outcome = Literal["completed", "stopped", "failed"]

RELEASE_AFTER_S = 0.5
PROGRESS_INTERVAL_S = 0.1
"""At most one progress row (and event) per job every 100 ms keeps the socket quiet."""


class JobCancelled(Exception):
    """Raised inside the worker at a checkpoint once its attempt must stop."""


def make_checkpoint(store, job_id: str, attempt: int, should_stop: Callable[[], bool], hooks=None):
    """``checkpoint(stage, fraction, message)`` for ``build``: raises ``JobCancelled`` once
    ``should_stop()`` or once a progress write finds the job no longer running this attempt."""
    last = [0.0]
    reported: list = [None]

    def checkpoint(stage: str, fraction: float, message: str) -> None:
        # The test hook slows progress reports down; a call that only repeats the last report
        # (the writer's cancel check inside a long step) does not sleep again.
        if hooks and hooks.delay_per_checkpoint_ms and reported[0] != (stage, fraction, message):
            reported[0] = (stage, fraction, message)
            time.sleep(hooks.delay_per_checkpoint_ms / 1000)
        if should_stop():
            raise JobCancelled(job_id)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            last[0] = now
            if store.progress(job_id, fraction * 100, stage, message, attempt=attempt) is None:
                raise JobCancelled(job_id)

    return checkpoint


def run_attempt(store, build: Callable, job: ExportJob, attempt: int, should_stop: Callable[[], bool],
                hooks=None) -> Outcome:
    """Run ``attempt`` of ``job`` to its end (see the module's contract)."""
    job_id = job.id
    partial = store.partial_path(job_id, attempt)
    try:
        checkpoint = make_checkpoint(store, job_id, attempt, should_stop, hooks)
        warnings = build(job, partial, checkpoint)
        if should_stop():
            raise JobCancelled(job_id)
        final = store.attempt_path(job_id, attempt)
        os.replace(partial, final)
        if hooks:
            hooks.hold_point(job_id, should_stop)
        if should_stop():
            raise JobCancelled(job_id)
        size = final.stat().st_size
        if store.complete(job_id, size, list(warnings or []), attempt=attempt) is None:
            # R3: cancelled (or failed, or put back) meanwhile: this attempt's output is discarded.
            store.remove_attempt_files(job_id, attempt)
            return "stopped"
        return "completed"
    except JobCancelled as stop:
        release_later(stop)
        store.remove_attempt_files(job_id, attempt)
        return "stopped"
    except OSError as exc:
        store.remove_attempt_files(job_id, attempt)
        store.fail(job_id, f"Export failed: {describe_os_error(exc)}. No archive was kept.", attempt=attempt)
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any bug in a writer must end the job, not hang it
        store.remove_attempt_files(job_id, attempt)
        traceback.print_exc()
        store.fail(job_id, f"Export failed: {type(exc).__name__}: {exc}", attempt=attempt)
        return "failed"


def release_later(stop: BaseException) -> None:
    """Keep ``stop`` (its traceback holds the stopped build's frames: the whole project and
    the rows made from it) a moment longer and let a helper thread free it, so the worker
    reports its stop without first freeing them (bench P8 says what that costs)."""
    timer = threading.Timer(RELEASE_AFTER_S, lambda kept=stop: None)
    timer.daemon = True
    timer.start()


def describe_os_error(exc: OSError) -> str:
    """What a user is told of a write error: a full disk by name, else the system's reason
    (never a path)."""
    if getattr(exc, "errno", None) == 28:
        return "the disk is full"
    return f"a write error ({exc.strerror or exc})"
