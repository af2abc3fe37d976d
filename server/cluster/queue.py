"""The job queue of the cluster: procrastinate on PostgreSQL, with export "tickets".

procrastinate gives the queue itself: entries fetched with ``FOR UPDATE SKIP LOCKED``,
workers woken by ``LISTEN/NOTIFY``, a cooperative abort (``context.should_abort()``, told
to the worker by NOTIFY), worker heartbeats (``procrastinate_workers.last_heartbeat``) and a
graceful stop on SIGTERM. Two rules it cannot express are ours (``server/DECISIONS.md``):

- Round-robin over users. procrastinate takes the entry with the highest ``priority``, then
  the lowest id: an order fixed when the entry is made, so a user who queued ten exports
  before another user's one would be served ten times first. So an entry is a *ticket* (task
  ``TASK``, no arguments): "one export may start". The worker that fetches a ticket then
  claims the export to run (``claim_next``): the oldest queued export of the user who was
  served least recently (never served first), locked with ``SKIP LOCKED`` so two workers
  never take the same one. Every queued export was made with a ticket in the same
  transaction, so there are always at least as many tickets as queued exports.
- Fencing by attempt. procrastinate counts attempts of its own entries; our writes are fenced
  by the export's own ``jobs.attempts`` (``server.job_attempt``), which a claim increments.

``jobs.queue_job_id`` names the ticket made when the export was queued (a cancel of a queued
export cancels it if no worker has fetched it yet: a fetched one may be running another
export); ``jobs.run_ticket`` the ticket whose worker runs it, set by the claim and cleared when
the export is put back (a cancel of a running export asks procrastinate to abort that one,
in the cancel's transaction).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from sqlalchemy import Float, bindparam, cast, func, select, update
from sqlalchemy.orm import aliased

from server.schema import jobs

TASK = "cellhub.export"
QUEUE = "exports"


def worker_app(conninfo: str, concurrency: int = 1):
    """The procrastinate ``App`` a worker runs: its own pool of connections to ``conninfo`` (a
    libpq connection string or URI), 2 to ``concurrency + 3`` (the listener, the fetches,
    the heartbeats and each running ticket's end)."""
    from procrastinate import App, PsycopgConnector

    return App(connector=PsycopgConnector(conninfo=conninfo, min_size=2, max_size=concurrency + 3,
                                          kwargs={"application_name": "cellhub-worker"}))


def deferring_app():
    """A procrastinate ``App`` that only defers and cancels tickets on the connection of a
    transaction of ours (``connection=``); it never opens connections of its own."""
    from procrastinate import App, SyncPsycopgConnector

    return App(connector=SyncPsycopgConnector())


def driver_connection(conn) -> Any:
    """The psycopg connection under a SQLAlchemy ``Connection`` (its open transaction)."""
    return conn.connection.driver_connection


def defer_ticket(app, conn) -> int:
    """A new ticket in ``conn``'s transaction (committed with it); its id."""
    return app.configure_task(TASK, queue=QUEUE, connection=driver_connection(conn)).defer()


def cancel_tickets(app, conn, row: Mapping) -> None:
    """In ``conn``'s transaction, for the job ``row`` just cancelled: the ticket running it is
    asked to abort (its worker hears it by NOTIFY at commit and stops at its next
    checkpoint); otherwise its own ticket is cancelled if no worker has fetched it yet."""
    connection = driver_connection(conn)
    if row["run_ticket"] is not None:
        app.job_manager.cancel_job_by_id(row["run_ticket"], abort=True, connection=connection)
    elif row["queue_job_id"] is not None:
        app.job_manager.cancel_job_by_id(row["queue_job_id"], abort=False, connection=connection)


_OTHER = aliased(jobs)
_LAST_SERVED = (select(func.max(_OTHER.c.claimed_at)).where(_OTHER.c.user_id == jobs.c.user_id)
                .scalar_subquery())
_NEXT = (select(jobs.c.id).where(jobs.c.status == "queued")
         .order_by(_LAST_SERVED.asc().nulls_first(), jobs.c.created_at, jobs.c.id)
         .limit(1).with_for_update(skip_locked=True, of=jobs).scalar_subquery())
_NOW = cast(func.extract("epoch", func.clock_timestamp()), Float)
CLAIM = (update(jobs).where(jobs.c.id == _NEXT, jobs.c.status == "queued")
         .values(status="running", stage="starting", message="Starting", attempts=jobs.c.attempts + 1,
                 seq=jobs.c.seq + 1, run_ticket=bindparam("ticket"), claimed_at=_NOW)
         .returning(jobs))
"""queued -> running for the next export in round-robin order over users (see the module)."""


def claim_next(store, ticket_id: int) -> Optional[Mapping]:
    """Claim the next export for the ticket ``ticket_id``, with its event, in one transaction;
    the job row (its ``attempts`` is the new attempt), or None if no export is queued."""
    with store.db.writing() as conn:
        row = conn.execute(CLAIM, {"ticket": ticket_id}).mappings().first()
        if row is not None and store.in_transaction is not None:
            store.in_transaction.changed(conn, row)
    return row


def set_ticket(conn, job_id: str, ticket_id: int) -> None:
    """Record the ticket made for ``job_id`` as it is queued (no event: not a change users
    see); no ticket runs it any more."""
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(queue_job_id=ticket_id, run_ticket=None))
