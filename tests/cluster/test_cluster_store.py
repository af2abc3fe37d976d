"""The cluster's rules in the database itself (issue 20), on a private PostgreSQL: the schema
and the queue's tables, a job and its queue entry made together, round-robin claims over
users, fencing by attempt, NOTIFY at commit, the reconciler's leases, the cancel's abort, and
no expiry under a streaming download. Worker and replica processes: ``test_cluster_cases.py``."""
from __future__ import annotations

import importlib.metadata
import time

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, update
from procrastinate.exceptions import ConnectorException

from app.models import ExportOptions
from server import accounts, migrate, project_store
from server.cli import main
from server.cluster import notify, queue
from server.cluster.reconciler import LOST_TWICE, reconcile
from server.cluster.replica import cluster_store
from server.db import Database
from server.domain import ProjectRecord
from server.schema import jobs, metadata


@pytest.fixture
def db(database_url):
    database = Database.from_url(database_url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def store(db, tmp_path):
    return cluster_store(db, tmp_path)


def _user_with_projects(db, name: str, projects: int = 1) -> tuple[int, list[int]]:
    user = accounts.ensure_user(db, name)
    with db.writing() as conn:
        ids = [project_store.insert_project(conn, ProjectRecord(0, f"{name}-{n}", ["cell"]), user) for n in range(projects)]
    return user, ids


def _sql(db, query: str, params=None) -> list:
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        rows = raw.execute(query, params).fetchall() if "select" in query.lower()[:12] else None
        if rows is None:
            raw.execute(query, params)
        raw.commit()
        return rows or []


def _register_worker(db) -> int:
    return _sql(db, "SELECT worker_id FROM procrastinate_register_worker_v1()")[0][0]


def _fetch_ticket(db, worker_id: int) -> int:
    """What a worker does first: take the next ticket (procrastinate's SKIP LOCKED fetch)."""
    return _sql(db, "SELECT id FROM procrastinate_fetch_job_v2(ARRAY['exports'], %s)", (worker_id,))[0][0]


def _claim(store, db, worker_id: int):
    ticket = _fetch_ticket(db, worker_id)
    return queue.claim_next(store, ticket), ticket


def _ticket(db, ticket_id: int) -> tuple:
    return tuple(_sql(db, "SELECT status::text, abort_requested FROM procrastinate_jobs WHERE id = %s",
                      (ticket_id,))[0])


# --- schema -----------------------------------------------------------------------------------


def _differences(db: Database) -> list:
    def ours(obj, name, kind, *_):
        return not (kind == "table" and name.startswith("procrastinate_"))

    with db.reading() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": ours})
        return compare_metadata(context, metadata)


def test_migrate_creates_the_schema_and_the_queue_and_is_idempotent(database_url, capsys):
    assert main(["migrate", "--database-url", database_url]) == 0
    assert f"upgraded from revision none to {migrate.head_revision()}" in capsys.readouterr().out
    assert main(["migrate", "--database-url", database_url]) == 0
    assert "schema up to date" in capsys.readouterr().out
    db = Database.from_url(database_url)
    try:
        assert _differences(db) == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"procrastinate_jobs", "procrastinate_workers", "procrastinate_events"} <= tables
    finally:
        db.dispose()


def test_the_queue_schema_is_the_one_of_the_pinned_procrastinate():
    from importlib import import_module

    revision = import_module("server.migrations.versions.0005_cluster")
    assert importlib.metadata.version("procrastinate") == revision.QUEUE_VERSION, (
        "procrastinate was upgraded: add a revision that runs its migration files, then update QUEUE_VERSION")


def test_downgrading_to_base_removes_the_queue_as_well(db):
    migrate.downgrade(db, "base")
    assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
    assert _sql(db, "SELECT count(*) FROM pg_type WHERE typname LIKE 'procrastinate%%'")[0][0] == 0
    assert _sql(db, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'procrastinate%%'")[0][0] == 0
    migrate.upgrade(db)
    assert _differences(db) == []


def test_a_replica_refuses_a_database_that_was_not_migrated(database_url):
    from server.cluster.replica import SchemaNotReady, open_cluster_database

    with pytest.raises(SchemaNotReady, match="python -m server migrate"):
        open_cluster_database(database_url)


# --- R1: the job row and its queue entry ------------------------------------------------------------


def test_a_job_and_its_ticket_are_made_in_one_transaction(db, store):
    user, (project,) = _user_with_projects(db, "ann")
    job, outcome = store.create(user, project, ExportOptions())
    assert outcome == "created"
    row = store.get_row(job.id)
    assert _ticket(db, row["queue_job_id"]) == ("todo", False)
    again, outcome = store.create(user, project, ExportOptions())
    assert (again.id, outcome) == (job.id, "active")
    assert _sql(db, "SELECT count(*) FROM procrastinate_jobs")[0][0] == 1  # no ticket without a row

    # A queue that refuses the entry: no job row either.
    store.cancel(job.id)
    _sql(db, "ALTER TABLE procrastinate_jobs ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
    with pytest.raises(ConnectorException):
        store.create(user, project, ExportOptions())
    assert [r["id"] for r in store.db.all(jobs.select())] == [job.id]


# --- round-robin over users, across workers -------------------------------------------------------


def test_workers_claim_exports_round_robin_over_users(db, store):
    ann, ann_projects = _user_with_projects(db, "ann", 3)
    bob, (bob_project,) = _user_with_projects(db, "bob")
    cid, (cid_project,) = _user_with_projects(db, "cid")
    made = {}
    for n, project in enumerate(ann_projects):  # Ann queues three exports first
        made[store.create(ann, project, ExportOptions())[0].id] = f"ann{n}"
    made[store.create(bob, bob_project, ExportOptions())[0].id] = "bob0"
    made[store.create(cid, cid_project, ExportOptions())[0].id] = "cid0"
    workers = [_register_worker(db), _register_worker(db)]
    order = []
    for turn in range(5):
        row, ticket = _claim(store, db, workers[turn % 2])
        order.append(made[row["id"]])
        assert row["run_ticket"] == ticket and row["attempts"] == 1
    # Nobody served yet: the oldest export; then whoever was served least recently.
    assert order == ["ann0", "bob0", "cid0", "ann1", "ann2"]
    assert _fetch_ticket_or_none(db, workers[0]) is None  # as many tickets as exports


def _fetch_ticket_or_none(db, worker_id):
    rows = _sql(db, "SELECT id FROM procrastinate_fetch_job_v2(ARRAY['exports'], %s)", (worker_id,))
    return rows[0][0] if rows else None


# --- fencing ------------------------------------------------------------------------------------------


def _lose_worker(db, worker_id: int) -> None:
    _sql(db, "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = %s",
         (worker_id,))


def test_a_worker_presumed_dead_can_neither_complete_nor_delete_the_next_attempt(db, store):
    user, (project,) = _user_with_projects(db, "ann")
    job, _ = store.create(user, project, ExportOptions())
    old_worker, new_worker = _register_worker(db), _register_worker(db)
    first, _ = _claim(store, db, old_worker)
    store.partial_path(job.id, 1).write_bytes(b"attempt 1, half written")
    _lose_worker(db, old_worker)
    assert reconcile(store, lease_seconds=5) == [(job.id, "put back")]
    second, _ = _claim(store, db, new_worker)
    assert (first["attempts"], second["attempts"]) == (1, 2)
    store.attempt_path(job.id, 2).write_bytes(b"attempt 2's archive")

    # The first worker wakes up and carries on: every write of attempt 1 changes nothing.
    assert store.progress(job.id, 50, "annotations", "m", attempt=1) is None
    assert store.complete(job.id, 10, [], attempt=1) is None
    assert store.fail(job.id, "Export failed: x", attempt=1) is None
    store.remove_attempt_files(job.id, 1)  # what it does when it finds itself fenced out
    assert store.attempt_path(job.id, 2).read_bytes() == b"attempt 2's archive"
    done = store.complete(job.id, 19, [], attempt=2)
    assert done.status == "completed" and store.archive_path(job.id) == store.attempt_path(job.id, 2)


# --- leases: the reconciler -------------------------------------------------------------------------


def test_a_lost_export_is_put_back_once_then_failed_and_a_live_one_is_left_alone(db, store):
    user, (project, other_project) = _user_with_projects(db, "ann", 2)
    job, _ = store.create(user, project, ExportOptions())
    healthy, _ = store.create(user, other_project, ExportOptions())
    dying, living = _register_worker(db), _register_worker(db)
    first, first_ticket = _claim(store, db, dying)
    assert first["id"] == job.id
    assert _claim(store, db, living)[0]["id"] == healthy.id
    assert reconcile(store, lease_seconds=5) == []  # every heartbeat is fresh

    _lose_worker(db, dying)
    assert reconcile(store, lease_seconds=5) == [(job.id, "put back")]
    back = store.get_row(job.id)
    assert (back["status"], back["recoveries"], back["seq"]) == ("queued", 1, first["seq"] + 1)
    assert back["run_ticket"] is None and _ticket(db, back["queue_job_id"]) == ("todo", False)
    assert _ticket(db, first_ticket)[0] == "failed"
    assert reconcile(store, lease_seconds=5) == []  # settled once

    second_worker = _register_worker(db)
    again, _ = _claim(store, db, second_worker)
    assert (again["id"], again["attempts"]) == (job.id, 2)
    _sql(db, "DELETE FROM procrastinate_workers WHERE id = %s", (second_worker,))  # pruned: gone
    assert reconcile(store, lease_seconds=5) == [(job.id, "failed")]
    final = store.get_row(job.id)
    assert (final["status"], final["message"]) == ("failed", LOST_TWICE)
    assert store.get_row(healthy.id)["status"] == "running"


# --- R2: the cancel's abort -----------------------------------------------------------------------------


def test_a_cancel_aborts_the_ticket_running_the_export_in_its_transaction(db, store):
    user, projects = _user_with_projects(db, "ann", 3)
    running, _ = store.create(user, projects[0], ExportOptions())
    waiting, _ = store.create(user, projects[1], ExportOptions())
    row, ticket = _claim(store, db, _register_worker(db))
    assert row["id"] == running.id
    assert store.cancel(running.id).status == "cancelled"
    assert _ticket(db, ticket) == ("doing", True)  # its worker hears it and stops

    waiting_ticket = store.get_row(waiting.id)["queue_job_id"]
    assert store.cancel(waiting.id).status == "cancelled"
    assert _ticket(db, waiting_ticket)[0] == "cancelled"  # never fetched: cancelled outright


def test_a_queued_exports_own_ticket_running_another_export_is_not_aborted(db, store):
    ann, (ann_project,) = _user_with_projects(db, "ann")
    bob, (bob_project,) = _user_with_projects(db, "bob")
    first, _ = store.create(ann, ann_project, ExportOptions())
    second, _ = store.create(bob, bob_project, ExportOptions())
    worker = _register_worker(db)
    # Ann's ticket is fetched first but runs Bob's export when Ann was served last.
    _sql(db, "UPDATE jobs SET claimed_at = 1 WHERE id = %s", (first.id,))
    _sql(db, "INSERT INTO jobs (id, user_id, project_id, status, created_at, options_json, claimed_at) "
         "VALUES ('old', %s, %s, 'completed', '2020-01-01', '{}', 2)", (ann, ann_project))
    row, ticket = _claim(store, db, worker)
    assert row["id"] == second.id and ticket == store.get_row(first.id)["queue_job_id"]
    assert store.cancel(first.id).status == "cancelled"
    assert _ticket(db, ticket) == ("doing", False)  # Bob's export goes on


# --- R6: NOTIFY ------------------------------------------------------------------------------------------


def _listener(postgres_url: str):
    from server.cluster.worker import conninfo_of

    conn = psycopg.connect(conninfo_of(postgres_url), autocommit=True)
    conn.execute(f"LISTEN {notify.CHANNEL}")
    return conn


def _received(conn, timeout: float = 0.3) -> list[tuple[int, dict]]:
    return [notify.decode(n.payload) for n in conn.notifies(timeout=timeout)]


def test_events_are_notified_at_commit_in_commit_order(db, store, database_url):
    ear = _listener(database_url)
    user, projects = _user_with_projects(db, "ann", 2)
    first, _ = store.create(user, projects[0], ExportOptions())
    second, _ = store.create(user, projects[1], ExportOptions())
    assert [(u, e["job_id"], e["seq"]) for u, e in _received(ear)] == [(user, first.id, 1), (user, second.id, 1)]

    late = db.engine.connect()
    late.begin()
    row = late.execute(update(jobs).where(jobs.c.id == first.id).values(seq=jobs.c.seq + 1, message="late")
                       .returning(jobs)).mappings().one()
    store.in_transaction.changed(late, row)
    assert _received(ear) == []  # not before its commit
    store.cancel(second.id)  # commits first
    late.commit()
    late.close()
    assert [(e["job_id"], e["seq"]) for _, e in _received(ear)] == [(second.id, 2), (first.id, 2)]
    ear.close()


def test_progress_notifications_are_throttled_per_job_and_status_changes_never(db, store, database_url):
    ear = _listener(database_url)
    user, (project,) = _user_with_projects(db, "ann")
    job, _ = store.create(user, project, ExportOptions())
    row, _ = _claim(store, db, _register_worker(db))
    for step in range(30):
        assert store.progress(job.id, step, "annotations", f"step {step}", attempt=1) is not None
    store.complete(job.id, 1, [], attempt=1)
    events = [e for _, e in _received(ear)]
    progress = [e for e in events if e["type"] == "export.progress"]
    assert [e["status"] for e in events if e["type"] != "export.progress"] == ["queued", "completed"]
    assert 1 <= len(progress) <= 3  # 30 changes within far less than 3 intervals
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and seqs[-1] == store.get_row(job.id)["seq"]
    ear.close()


def test_the_throttle_lets_a_new_status_through_at_once_and_progress_once_per_interval():
    now = [0.0]
    throttle = notify.ProgressThrottle(interval=0.25, clock=lambda: now[0])
    assert throttle.allow("j", "queued")
    assert throttle.allow("j", "running")
    assert not throttle.allow("j", "running")
    now[0] = 0.2
    assert not throttle.allow("j", "running")
    assert throttle.allow("k", "running")  # per job
    now[0] = 0.26
    assert throttle.allow("j", "running")
    assert throttle.allow("j", "cancelled")
    assert throttle.allow("j", "cancelled") and "j" not in throttle._last  # terminal: forgotten


def test_a_long_message_is_cut_to_fit_notifys_limit(db, database_url):
    event = {"type": "export.failed", "job_id": "j", "project_id": 1, "seq": 3, "status": "failed",
             "progress": 0, "stage": "failed", "message": "é" * 20_000, "ts": 1.0}
    payload = notify.encode(7, event)
    assert len(payload.encode()) <= notify.MAX_PAYLOAD_BYTES
    user, decoded = notify.decode(payload)
    assert user == 7 and decoded["message"].endswith("…") and decoded["seq"] == 3
    ear = _listener(database_url)
    with db.writing() as conn:
        notify.notify(conn, payload)  # PostgreSQL takes it
    assert _received(ear)[0][1]["message"] == decoded["message"]
    ear.close()


# --- R5: expiry and streaming ------------------------------------------------------------------------------


def test_expiry_never_takes_an_archive_while_a_download_streams_it(db, store):
    user, (project,) = _user_with_projects(db, "ann")
    job, _ = store.create(user, project, ExportOptions())
    _claim(store, db, _register_worker(db))
    store.attempt_path(job.id, 1).write_bytes(b"zip")
    store.complete(job.id, 3, [], attempt=1)
    assert store.claim_download(job.id)  # a replica starts streaming it
    assert store.expire_old(ttl_seconds=0) == []
    assert store.attempt_path(job.id, 1).exists()
    _sql(db, "UPDATE jobs SET streaming_until = %s WHERE id = %s", (time.time() - 1, job.id))
    assert store.expire_old(ttl_seconds=0) == [job.id]
    assert not store.attempt_path(job.id, 1).exists()
