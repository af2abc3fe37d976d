"""Workers that stop (issue 20, case 4 and the worker command's signals), on a real cluster:
``kill -9`` of the worker running a job (its lease runs out, the job runs again elsewhere;
a second kill fails it with the R7 message), and SIGTERM (the job finishes within the grace,
or is handed back and run by another worker). Workers are killed and started here, so the
module has a cluster of its own, with a short lease and grace."""
from __future__ import annotations

import io
import time
import zipfile

import pytest

from server.cluster.reconciler import LOST_TWICE
from testkit.cluster import start_cluster
from tests.cluster.conftest import hooks, new_user, wait_state

LEASE_S = 2.0
GRACE_S = 4.0


@pytest.fixture(scope="module")
def cluster():
    running = start_cluster(lease_seconds=LEASE_S, grace_seconds=GRACE_S)
    yield running
    running.stop()


def _workers(cluster, count: int = 2) -> list:
    """``count`` live workers (starting new ones for those stopped by earlier tests)."""
    alive = [w for w in cluster.workers if w.alive()]
    for _ in range(count - len(alive)):
        alive.append(cluster.start_worker())
    cluster.wait_workers(count)
    return alive


def _held_on_a_worker(cluster, session) -> tuple[dict, object]:
    """A job started and held before its completion; the worker process running it."""
    hooks(cluster, hold_before_complete=True)
    job = session.start(session.project_id()).json()
    state = wait_state(cluster, job["id"], lambda s: s["held"])
    worker = next(w for w in cluster.workers if w.proc.pid == state["worker_pid"])
    return job, worker


def _release(cluster, job_id: str) -> None:
    cluster.replicas[1].api("POST", f"/api/test/jobs/{job_id}/release")


def test_4_a_killed_workers_job_runs_again_on_the_other_worker_and_completes(cluster):
    workers = _workers(cluster)
    a = new_user(cluster).on(0)
    job, first = _held_on_a_worker(cluster, a)
    first.kill()
    # Its lease runs out; the job is put back and the other worker takes it, as attempt 2.
    # The state is read field by field (the row, then the hook files), and the killed worker's
    # hold marker outlives it: wait for attempt 2 itself, not only another worker's pid.
    state = wait_state(cluster, job["id"], lambda s: s["attempt"] == 2 and s["held"]
                       and s["worker_pid"] != first.proc.pid, timeout=LEASE_S * 5)
    assert state["worker_pid"] == next(w for w in workers if w is not first).proc.pid
    assert state["attempt"] == 2 and not any(name.startswith(f"{job['id']}.1.") for name in state["files"])
    _release(cluster, job["id"])
    done = a.wait_status(job["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed"
    archive = a.http.get(f"/api/exports/{job['id']}/download")
    assert archive.status_code == 200 and zipfile.ZipFile(io.BytesIO(archive.content)).testzip() is None
    assert wait_state(cluster, job["id"], lambda s: True)["files"] == [f"{job['id']}.2.zip"]


def test_4_a_job_whose_worker_is_killed_twice_fails_with_the_r7_message(cluster):
    _workers(cluster)
    a = new_user(cluster).on(0)
    job, first = _held_on_a_worker(cluster, a)
    first.kill()
    state = wait_state(cluster, job["id"], lambda s: s["attempt"] == 2 and s["held"]
                       and s["worker_pid"] != first.proc.pid, timeout=LEASE_S * 5)
    second = next(w for w in cluster.workers if w.proc.pid == state["worker_pid"])
    second.kill()
    final = a.wait_status(job["id"], {"failed", "completed", "cancelled"}, timeout=LEASE_S * 5)
    assert (final["status"], final["message"]) == ("failed", LOST_TWICE)
    assert wait_state(cluster, job["id"], lambda s: True)["files"] == []
    _workers(cluster)  # whatever runs next finds two workers


def test_sigterm_lets_the_running_job_finish_within_the_grace(cluster):
    _workers(cluster)
    a = new_user(cluster).on(0)
    job, worker = _held_on_a_worker(cluster, a)
    worker.terminate()  # SIGTERM: no new ticket is fetched; the running job may finish
    time.sleep(0.5)
    assert worker.alive()
    _release(cluster, job["id"])
    assert worker.proc.wait(timeout=GRACE_S + 10) == 0
    done = a.wait_status(job["id"], {"completed", "failed", "cancelled"})
    assert (done["status"], wait_state(cluster, job["id"], lambda s: True)["attempt"]) == ("completed", 1)
    assert "worker stopped" in worker.log()


def test_sigterm_hands_back_a_job_that_does_not_finish_within_the_grace(cluster):
    workers = _workers(cluster)
    a = new_user(cluster).on(0)
    job, worker = _held_on_a_worker(cluster, a)
    started = time.monotonic()
    worker.terminate()
    assert worker.proc.wait(timeout=GRACE_S + 10) == 0
    assert time.monotonic() - started >= GRACE_S - 0.5
    # Handed back (no lost attempt: recoveries stays 0) and run by the other worker.
    state = wait_state(cluster, job["id"], lambda s: s["held"] and s["worker_pid"] != worker.proc.pid)
    assert state["worker_pid"] == next(w for w in workers if w is not worker).proc.pid
    assert cluster.sql("SELECT recoveries, attempts FROM jobs WHERE id = %s", job["id"]) == [(0, 2)]
    _release(cluster, job["id"])
    assert a.wait_status(job["id"], {"completed", "failed", "cancelled"})["status"] == "completed"
    _workers(cluster)


def test_a_replica_with_workers_runs_exports_itself_and_hands_them_back_when_stopped(cluster):
    for worker in [w for w in cluster.workers if w.alive()]:
        worker.stop()
    replica = cluster.start_replica(workers=1)
    cluster.wait_replica(replica)
    cluster.wait_workers(1)  # the replica's own worker
    a = new_user(cluster).on(0)
    job = a.start(a.project_id()).json()
    assert a.wait_status(job["id"], {"completed", "failed", "cancelled"})["status"] == "completed"
    # Stopped with a job held past the grace: the job goes back to the queue, not lost.
    job, _ = _held_on_a_worker_pid(cluster, a)
    started = time.monotonic()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it: the exit status is -15.
    assert replica.stop(timeout=GRACE_S + 20) == -15
    assert time.monotonic() - started >= GRACE_S - 0.5, replica.log()
    assert a.wait_status(job["id"], {"queued"}, timeout=5)["message"].startswith("Waiting for a worker")
    cluster.replicas.remove(replica)
    _workers(cluster)  # worker processes again: one of them takes it up
    wait_state(cluster, job["id"], lambda s: s["held"], timeout=30)
    _release(cluster, job["id"])
    assert a.wait_status(job["id"], {"completed", "failed", "cancelled"})["status"] == "completed"


def _held_on_a_worker_pid(cluster, session) -> tuple[dict, int]:
    hooks(cluster, hold_before_complete=True)
    job = session.start(session.project_id()).json()
    state = wait_state(cluster, job["id"], lambda s: s["held"])
    return job, state["worker_pid"]
