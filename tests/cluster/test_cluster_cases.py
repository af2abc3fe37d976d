"""Cases 1, 2, 3, 5 and 6 of issue 20 on a real cluster: a private PostgreSQL, 2 web replicas
and 2 worker processes sharing one temporary folder (one cluster for the module; each test
has its own users). The test hooks work across the processes (``SharedTestHooks``)."""
from __future__ import annotations

import hashlib
import io
import threading
import time
import zipfile

from websockets.exceptions import ConnectionClosed

from tests.cluster.conftest import hooks, job_state, new_user, wait_state
from testkit.api_session import recv_events

TERMINAL = {"completed", "cancelled", "failed", "expired"}


def _quiet(ws, seconds: float = 0.6) -> list[dict]:
    """Whatever arrives within ``seconds`` (pings skipped)."""
    import json

    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except TimeoutError:
            break
        if message.get("type") != "ping":
            got.append(message)
    return got


def test_1_eight_simultaneous_starts_over_both_replicas_make_one_job(cluster):
    user = new_user(cluster)
    project = user.on(0).project_id()
    hooks(cluster, delay_per_checkpoint_ms=20)
    barrier = threading.Barrier(8)
    answers: list = [None] * 8

    def start(n: int) -> None:
        session = user.on(n % 2)  # four through each replica
        barrier.wait()
        answers[n] = session.start(project)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] + [409] * 7, [r.text for r in answers]
    job_id = next(r.json()["id"] for r in answers if r.status_code == 202)
    assert {r.json()["job"]["id"] for r in answers if r.status_code == 409} == {job_id}
    rows = cluster.sql("SELECT count(*) FROM jobs j JOIN users u ON u.id = j.user_id WHERE u.username = %s",
                       user.name)
    assert rows == [(1,)]
    assert user.on(1).http.post(f"/api/exports/{job_id}/cancel").status_code == 200


def test_2_a_job_on_a_worker_cancelled_through_replica_a_is_told_on_replica_b(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    hooks(cluster, delay_per_checkpoint_ms=40)
    with b.websocket() as ws:
        job = a.start(a.project_id()).json()
        seen = recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "running" and e["progress"] > 0)
        state = wait_state(cluster, job["id"], lambda s: s["worker_pid"] is not None)
        assert state["worker_pid"] in {w.proc.pid for w in cluster.workers}  # a worker process runs it
        answer = a.http.post(f"/api/exports/{job['id']}/cancel")
        assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
        seen += recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] in TERMINAL)
        cancelled = seen[-1]
        assert cancelled["type"] == "export.cancelled" and cancelled["seq"] == answer.json()["seq"]
        assert cancelled["seq"] > max(e["seq"] for e in seen[:-1])
        # The worker stops at its next checkpoint and leaves nothing; nothing else is told.
        final = wait_state(cluster, job["id"], lambda s: not s["files"], timeout=10)
        assert final["status"] == "cancelled"
        assert [e for e in _quiet(ws) if e["job_id"] == job["id"]] == []
    assert b.job(job["id"])["status"] == "cancelled"
    (ticket_status,) = cluster.sql("SELECT q.status::text FROM jobs j JOIN procrastinate_jobs q "
                                   "ON q.id = j.run_ticket WHERE j.id = %s", job["id"])[0]
    assert ticket_status == "aborted"  # the worker heard the queue's abort


def _held_job(cluster, session) -> dict:
    hooks(cluster, hold_before_complete=True)
    job = session.start(session.project_id()).json()
    wait_state(cluster, job["id"], lambda s: s["held"], replica=1)  # held by a worker, seen on B
    return job


def test_3_cancel_before_the_release_of_a_held_completion_wins(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    with b.websocket() as ws:
        job = _held_job(cluster, a)
        assert a.http.post(f"/api/exports/{job['id']}/cancel").json()["status"] == "cancelled"
        cluster.replicas[1].api("POST", f"/api/test/jobs/{job['id']}/release")
        state = wait_state(cluster, job["id"], lambda s: not s["held"] and not s["files"], replica=1)
        assert state["status"] == "cancelled"
        events = [e for e in _quiet(ws, 1.0) if e["job_id"] == job["id"]]
    terminal = [e["status"] for e in events if e["status"] in TERMINAL]
    assert terminal == ["cancelled"]  # the one terminal status; never completed after it
    assert b.job(job["id"])["status"] == "cancelled"


def test_3_a_cancel_after_the_release_of_a_held_completion_deletes_the_archive(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    job = _held_job(cluster, a)
    assert cluster.replicas[1].api("POST", f"/api/test/jobs/{job['id']}/release")[1] == {"released": True}
    completed = b.wait_status(job["id"], {"completed", "cancelled", "failed"})
    assert completed["status"] == "completed"
    answer = a.http.post(f"/api/exports/{job['id']}/cancel")
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    state = job_state(cluster, job["id"])
    assert state["status"] == "cancelled" and state["files"] == []
    assert b.http.get(f"/api/exports/{job['id']}/download").status_code == 410


def test_3_a_cancel_racing_the_release_on_the_other_replica_leaves_one_outcome(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    for offset in (-0.01, 0.0, 0.01):
        job = _held_job(cluster, a)
        go = threading.Barrier(2)
        answers = {}

        def release():
            go.wait()
            time.sleep(max(0.0, offset))
            answers["release"] = cluster.replicas[1].api("POST", f"/api/test/jobs/{job['id']}/release")

        def cancel():
            go.wait()
            time.sleep(max(0.0, -offset))
            answers["cancel"] = a.http.post(f"/api/exports/{job['id']}/cancel")

        threads = [threading.Thread(target=release), threading.Thread(target=cancel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Released first and completed first, or cancelled first: the cancel wins either way
        # (nothing was downloaded), and no file of any attempt is left.
        assert answers["cancel"].status_code == 200, answers["cancel"].text
        state = wait_state(cluster, job["id"], lambda s: not s["held"] and not s["files"], replica=1)
        assert state["status"] == "cancelled", (offset, state)
        time.sleep(0.3)
        assert b.job(job["id"])["status"] == "cancelled"


def test_5_replica_b_sees_every_status_of_a_job_started_through_a_in_seq_order(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    hooks(cluster, delay_per_checkpoint_ms=5)
    with b.websocket() as ws:
        job = a.start(a.project_id()).json()
        events = [e for e in recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] in TERMINAL)
                  if e["job_id"] == job["id"]]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), seqs  # strictly increasing
    assert events[0]["type"] == "export.started" and events[0]["seq"] == 1
    assert "running" in [e["status"] for e in events]
    assert events[-1]["type"] == "export.completed" and events[-1]["seq"] == b.job(job["id"])["seq"]


def _terminate_listener(cluster, replica) -> int:
    rows = cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name LIKE %s", f"cellhub-events %:{replica.proc.pid}")
    return len(rows)


def test_5_a_replica_that_loses_its_listener_drops_its_sockets_and_recovers(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    hooks(cluster, delay_per_checkpoint_ms=30)
    with b.websocket() as ws:
        job = a.start(a.project_id()).json()
        recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "running")
        assert _terminate_listener(cluster, cluster.replicas[1]) == 1
        closed = False
        try:
            _quiet(ws, 5.0)
        except ConnectionClosed:
            closed = True
        assert closed, "replica B kept a socket open without its listener"
    # Meanwhile the job goes on; the page polls (C7), then reconnects and re-queries.
    assert a.http.post(f"/api/exports/{job['id']}/cancel").json()["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while True:
        try:
            ws = b.websocket()
            break
        except Exception:  # noqa: BLE001 - refused (1013) until B listens again
            assert time.monotonic() < deadline, "replica B never listened again"
            time.sleep(0.1)
    with ws:
        assert b.job(job["id"])["status"] == "cancelled"  # the re-query shows the right state
        second = a.start(a.project_id()).json()  # and B hears events again
        got = recv_events(ws, lambda e: e["job_id"] == second["id"] and e["status"] == "running")
        assert got[-1]["seq"] >= 2
    a.http.post(f"/api/exports/{second['id']}/cancel")


def test_6_a_download_through_b_of_a_workers_archive_then_a_cancel_is_409(cluster):
    user = new_user(cluster)
    a, b = user.on(0), user.on(1)
    job = a.start(a.project_id(), {"annotation_formats": ["coco"], "metrics_formats": ["csv"]}).json()
    b.wait_status(job["id"], {"completed"})
    made = job_state(cluster, job["id"])
    download = b.http.get(f"/api/exports/{job['id']}/download")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == made["sha256"]
    names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
    assert any(name.endswith(".json") for name in names) and any(name.endswith(".csv") for name in names)
    answer = a.http.post(f"/api/exports/{job['id']}/cancel")
    assert answer.status_code == 409 and answer.json()["detail"] == "already downloaded"
    state = job_state(cluster, job["id"], replica=1)
    assert state["delivered"] and state["archive_exists"] and state["downloads_served"] == 1


def test_replicas_started_at_once_seed_one_demo_and_add_one_default_user(cluster):
    assert cluster.sql("SELECT count(*) FROM projects WHERE synthetic") == [(1,)]
    assert cluster.sql("SELECT count(*) FROM users WHERE username = 'local'") == [(1,)]


def test_a_replicas_sign_in_link_works_through_that_replica_only(cluster):
    import re

    import httpx

    a, b = cluster.replicas
    link = re.search(r"http://\S+(/login\?token=\S+)", a.log()).group(1)
    on_b = httpx.get(b.base_url + link, follow_redirects=False)
    assert on_b.status_code == 403 and "cellhub_session" not in on_b.cookies
    on_a = httpx.get(a.base_url + link, follow_redirects=False)
    assert on_a.status_code == 303 and on_a.cookies.get("cellhub_session")
    assert httpx.get(a.base_url + link, follow_redirects=False).status_code == 403  # one time only
