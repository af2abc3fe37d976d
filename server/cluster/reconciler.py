"""R7 by leases: the reconciler, a loop in every web replica (not a queued task: it must run
when no worker does, and a queue cannot be trusted to recover itself).

A running export's lease is its worker's heartbeat: procrastinate's worker writes
``procrastinate_workers.last_heartbeat`` every ``lease/5`` seconds while it lives. An export
is lost when the ticket that runs it (``jobs.run_ticket``) is gone or no longer ``doing``,
or its worker is gone or has not heart-beaten for ``lease`` seconds. A lost export is

- put back once: status queued, ``recoveries`` + 1, a new ticket, a new event (its next
  claim is a new attempt, so the worker presumed dead can no longer write anything: fencing);
- failed with ``LOST_TWICE`` after that.

The stale ticket is marked failed in the same transaction. Every step is a compare-and-set
on the attempt that was lost, so replicas reconciling at once change each export once.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Mapping

from sqlalchemy import bindparam, column, func, literal_column, or_, select, table, text

from server.db import utc_now_iso
from server.jobs import OWN_ATTEMPT, transition_statement
from server.schema import jobs

LOST_TWICE = "Export failed: the worker running it stopped twice. Please start it again."
MAX_RECOVERIES = 1

log = logging.getLogger("cellhub.cluster")

_tickets = table("procrastinate_jobs", column("id"), column("status"), column("worker_id"))
_workers = table("procrastinate_workers", column("id"), column("last_heartbeat"))

LOST = (
    select(jobs.c.id, jobs.c.attempts, jobs.c.recoveries, jobs.c.run_ticket)
    .select_from(jobs.outerjoin(_tickets, _tickets.c.id == jobs.c.run_ticket)
                 .outerjoin(_workers, _workers.c.id == _tickets.c.worker_id))
    .where(jobs.c.status == "running", or_(
        _tickets.c.id.is_(None),
        _tickets.c.status != literal_column("'doing'"),
        _workers.c.id.is_(None),
        _workers.c.last_heartbeat < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease")),
    ))
)
"""Running exports whose lease has run out (see the module)."""

PUT_BACK = transition_statement(OWN_ATTEMPT, status="queued", stage="queued", progress=0,
                                message="Its worker stopped; waiting for another worker",
                                recoveries=jobs.c.recoveries + 1)
FAIL_LOST = transition_statement(OWN_ATTEMPT, status="failed", stage="failed", message=LOST_TWICE,
                                 finished_at=bindparam("new_finished_at"))
_FINISH_STALE = text("SELECT procrastinate_finish_job_v1(id, 'failed', false) FROM procrastinate_jobs "
                     "WHERE id = :ticket AND status = 'doing'")


def reconcile(store, lease_seconds: float) -> list[tuple[str, str]]:
    """One pass: ``[(job id, "put back" | "failed")]`` for every lost export it settled."""
    settled = []
    for lost in store.db.all(LOST, {"lease": float(lease_seconds)}):
        settled.append((lost["id"], _settle(store, lost)))
    return [item for item in settled if item[1] is not None]


def _settle(store, lost: Mapping):
    def finish_stale_ticket(conn, _row) -> None:
        if lost["run_ticket"] is not None:
            conn.execute(_FINISH_STALE, {"ticket": lost["run_ticket"]})

    if lost["recoveries"] >= MAX_RECOVERIES:
        row = store.transition(lost["id"], FAIL_LOST, also=finish_stale_ticket, attempt=lost["attempts"],
                               new_finished_at=utc_now_iso())
        outcome = "failed"
    else:
        def requeue(conn, row) -> None:
            finish_stale_ticket(conn, row)
            store.in_transaction.requeued(conn, row)

        row = store.transition(lost["id"], PUT_BACK, also=requeue, attempt=lost["attempts"])
        outcome = "put back"
    if row is None:
        return None  # settled meanwhile (another replica, a cancel, or the worker after all)
    log.warning("export %s: its worker stopped heart-beating; %s", lost["id"], outcome)
    store.remove_attempt_files(lost["id"], lost["attempts"])
    return outcome


async def reconcile_forever(store, lease_seconds: float, stop: asyncio.Event) -> None:
    """``reconcile`` every ``lease/4`` seconds (at least every 0.25 s) until ``stop``."""
    period = max(0.25, lease_seconds / 4)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            await loop.run_in_executor(None, reconcile, store, lease_seconds)
        except Exception:  # noqa: BLE001 - the database may be away for a while: try again
            log.exception("reconciler pass failed")
        try:
            await asyncio.wait_for(stop.wait(), timeout=period)
        except asyncio.TimeoutError:
            pass
