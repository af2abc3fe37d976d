"""The cluster's export worker: a procrastinate worker whose one task runs an export ticket.

``python -m server worker --database-url URL --shared-dir DIR [--concurrency 1]`` runs it as
its own process; ``python -m server run --database-url ... --workers N`` (N > 0) runs one
inside the web replica. Per ticket (``run_export_ticket``): claim the next export in
round-robin order (``queue.claim_next``, a new attempt), run that attempt
(``server.job_attempt``), and end as the attempt did.

Stopping (SIGTERM, or the replica's shutdown): procrastinate stops fetching and waits up to
``grace`` seconds for running exports to finish; it then asks them to abort for shutdown,
and each hands its export back (``HAND_BACK``: queued again with a new ticket, fenced by its
attempt, same transaction), so no export is left running. A worker killed outright (SIGKILL,
a lost machine) stops heart-beating and the reconciler puts its exports back
(``server.cluster.reconciler``).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

from sqlalchemy.engine import make_url

from server.cluster import queue
from server.job_attempt import run_attempt
from server.jobs import OWN_ATTEMPT, job_from_row, transition_statement

HAND_BACK = transition_statement(OWN_ATTEMPT, status="queued", stage="queued", progress=0,
                                 message="Waiting for a worker (the previous one stopped)")

log = logging.getLogger("cellhub.cluster")


def conninfo_of(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy URL (``postgresql+psycopg://...`` -> ``postgresql://...``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def hand_back(store, job_id: str, attempt: int) -> bool:
    """A stopping worker's export back in the queue (a new ticket); False if the attempt no
    longer ran it (cancelled or settled meanwhile)."""
    return store.transition(job_id, HAND_BACK, also=store.in_transaction.requeued, attempt=attempt) is not None


def export_task(store, build: Callable, hooks=None) -> Callable:
    """The task function for tickets (sync: procrastinate runs it on a thread)."""
    from procrastinate import exceptions
    from procrastinate.job_context import AbortReason

    def run_export_ticket(context) -> str:
        row = queue.claim_next(store, context.job.id)
        if row is None:
            return "no export was queued"
        job, attempt = job_from_row(row), int(row["attempts"])
        if hooks is not None:
            hooks.note_run(job.id)
        outcome = run_attempt(store, build, job, attempt, context.should_abort, hooks)
        if outcome != "stopped":
            return f"export {job.id}: {outcome}"
        # The attempt did not finish: cancelled, no longer this attempt's, or shutting down.
        # The ticket ends "aborted" in the queue's records either way.
        if context.abort_reason() == AbortReason.SHUTDOWN and hand_back(store, job.id, attempt):
            raise exceptions.JobAborted(f"export {job.id} handed back")
        raise exceptions.JobAborted(f"export {job.id} stopped")

    return run_export_ticket


async def run_worker(store, build: Callable, hooks, database_url: str, *, concurrency: int = 1,
                     lease_seconds: float = 30.0, grace_seconds: float = 30.0,
                     install_signal_handlers: bool = True, name: Optional[str] = None) -> None:
    """Run a worker until it is stopped (a signal, or this coroutine's cancellation)."""
    from procrastinate.worker import Worker

    app = queue.worker_app(conninfo_of(database_url), concurrency)
    app.task(name=queue.TASK, queue=queue.QUEUE, pass_context=True)(export_task(store, build, hooks))
    beat = lease_seconds / 5
    async with app.open_async():
        worker = Worker(
            app=app, queues=[queue.QUEUE], concurrency=concurrency, name=name or "cellhub-worker",
            shutdown_graceful_timeout=grace_seconds, update_heartbeat_interval=beat,
            stalled_worker_timeout=lease_seconds, fetch_job_polling_interval=min(5.0, lease_seconds),
            abort_job_polling_interval=1.0, delete_jobs="successful", install_signal_handlers=install_signal_handlers)
        keeper = asyncio.create_task(_keep_heart_beating(app, worker, beat))
        try:
            await worker.run()
        finally:
            keeper.cancel()


async def _keep_heart_beating(app, worker, interval: float) -> None:
    """Heartbeats for as long as the worker is registered. procrastinate's own heartbeat is a
    side task that its graceful stop cancels first, before it waits (up to the grace) for
    running exports: alone, a stopping worker would look dead to the reconciler after the
    lease, and its export would be put back while it still runs."""
    while True:
        await asyncio.sleep(interval)
        if worker.worker_id is not None:
            try:
                await app.job_manager.update_heartbeat(worker.worker_id)
            except Exception:  # noqa: BLE001 - the next beat tries again; the lease is several beats
                log.warning("heartbeat failed", exc_info=True)
