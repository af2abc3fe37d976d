"""What the cluster adds inside the job store's write transactions (``JobStore``'s
``in_transaction``), so that each is committed with the row or not at all:

- a new job gets its queue ticket (R1: never a job row without its queue entry, never an
  entry without its row) and its event;
- every change of ``seq`` is announced by NOTIFY (progress throttled per job, status changes
  never: ``server.cluster.notify``);
- a cancel asks the queue to abort the ticket that runs the job, or cancels its unfetched
  ticket (R2: the compare-and-set, the queue's abort and the event, one transaction).
"""
from __future__ import annotations

import time
from typing import Any, Mapping

from app.models import ExportEvent
from server.cluster import notify, queue
from server.jobs import job_from_row


def event_of(row: Mapping) -> dict:
    """The R6 event that tells the job row ``row`` (stamped now)."""
    return ExportEvent.from_job(job_from_row(row), time.time() * 1000).model_dump()


class ClusterTransactions:
    """``server.jobs.TransactionHooks`` for PostgreSQL with procrastinate."""

    def __init__(self, app, throttle: notify.ProgressThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or notify.ProgressThrottle()

    def created(self, conn: Any, row: Mapping) -> None:
        queue.set_ticket(conn, row["id"], queue.defer_ticket(self.app, conn))
        self.changed(conn, row)

    def changed(self, conn: Any, row: Mapping) -> None:
        if self.throttle.allow(row["id"], row["status"]):
            notify.notify(conn, notify.encode(int(row["user_id"]), event_of(row)))

    def cancelled(self, conn: Any, row: Mapping) -> None:
        queue.cancel_tickets(self.app, conn, row)

    def requeued(self, conn: Any, row: Mapping) -> None:
        """A job put back in the queue (handed back, or its worker lost): a new ticket."""
        queue.set_ticket(conn, row["id"], queue.defer_ticket(self.app, conn))
